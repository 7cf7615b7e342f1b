// ghingest dashboard: live updates over Server-Sent Events, and the repository typeahead. No framework.
"use strict";

(function () {
  const body = document.body;
  const status = document.getElementById("live-status");
  const announcer = document.getElementById("live-announcer");

  function setStatus(state, text) {
    if (!status) return;
    status.dataset.state = state;
    status.querySelector(".label").textContent = text;
  }

  // --- re-render the page's live region from the server (same URL), keeping focus and filters intact ---------
  // A page may ask for a slower pace (the overview: its figures change at most that often on the server).
  const MIN_REFRESH_MS = Math.max(1000, Number(body.dataset.liveMinMs || 0));
  let lastRefresh = 0;
  let pending = null;
  let inFlight = false;

  function keysIn(root) {
    return new Set(Array.from(root.querySelectorAll("[data-key]"), (el) => el.dataset.key));
  }

  async function refresh() {
    pending = null;
    const region = document.querySelector("[data-live-region]");
    if (!region || inFlight) return;
    // Older pages (a cursor in the URL) stay as they are: what is new appears on the first page.
    if (new URLSearchParams(location.search).has("cursor")) return;
    inFlight = true;
    lastRefresh = Date.now();
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected && new URL(response.url).pathname === "/login") {
        setStatus("offline", "Signed out");
        return;
      }
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.querySelector("[data-live-region]");
      if (!fresh) return;
      const before = keysIn(region);
      const focused = region.contains(document.activeElement) ? document.activeElement : null;
      const focusHref = focused && focused.getAttribute("href");
      region.replaceChildren(...Array.from(fresh.childNodes, (node) => document.importNode(node, true)));
      // Figures computed before the newest change (another view's, a moment ago): ask again after the throttle.
      if (fresh.hasAttribute("data-live-behind")) scheduleRefresh();
      if (focused) {
        // Keep the keyboard where it was: the same link in the new content, else the region itself.
        const again = focusHref && region.querySelector('a[href="' + CSS.escape(focusHref) + '"]');
        if (again) again.focus();
        else {
          region.setAttribute("tabindex", "-1");
          region.focus();
        }
      }
      let added = 0;
      for (const el of region.querySelectorAll("[data-key]")) {
        if (!before.has(el.dataset.key)) {
          el.classList.add("is-new");
          added += 1;
        }
      }
      if (added && announcer) announcer.textContent = added === 1 ? "1 new item" : added + " new items";
    } catch (error) {
      // The server is away; the stream's reconnection will bring us back here.
    } finally {
      inFlight = false;
    }
  }

  function scheduleRefresh() {
    if (pending) return;
    const wait = Math.max(0, lastRefresh + MIN_REFRESH_MS - Date.now());
    pending = setTimeout(refresh, wait);
  }

  // --- the change stream ------------------------------------------------------------------------------------
  function follow() {
    if (!body.dataset.liveKinds || !window.EventSource) return;
    const kinds = body.dataset.liveKinds.split(",");
    const ref = body.dataset.liveRef || null;
    let seq = body.dataset.liveSeq || "0";
    let source = null;
    let wasOffline = false;
    let offlineTimer = null;
    let backoff = 1000;
    // Where the server cannot stream, each request ends at once and EventSource asks again after `retry` (the
    // poll interval): say so, and wait that long (and a little more) before calling it offline.
    const pollSeconds = Number(body.dataset.livePoll || 0);
    const liveLabel = pollSeconds ? "Live (checks every " + pollSeconds + " s: this deployment cannot stream)" : "Live";
    const offlineAfterMs = pollSeconds ? pollSeconds * 1000 + 5000 : 1500;

    function connect() {
      source = new EventSource("/live?after=" + encodeURIComponent(seq));
      source.addEventListener("open", () => {
        clearTimeout(offlineTimer);
        offlineTimer = null;
        setStatus("live", liveLabel);
        backoff = 1000;
      });
      source.addEventListener("hello", (event) => {
        // Resumed: anything committed while we were away was sent before this, or is in the page we fetch now.
        if (wasOffline) scheduleRefresh();
        wasOffline = false;
        seq = event.lastEventId || seq;
      });
      source.addEventListener("reset", (event) => {
        seq = event.lastEventId || seq;
        scheduleRefresh();
      });
      for (const kind of kinds) {
        source.addEventListener(kind, (event) => {
          seq = event.lastEventId || seq;
          if (ref) {
            const data = JSON.parse(event.data);
            if (String(data.ref) !== ref) return;
          }
          scheduleRefresh();
        });
      }
      source.addEventListener("error", () => {
        // A stream ends every few seconds by design and resumes at once: say "offline" only if it stays away.
        if (!offlineTimer) {
          offlineTimer = setTimeout(() => {
            wasOffline = true;
            setStatus("offline", "Offline – reconnecting…");
          }, offlineAfterMs);
        }
        if (source.readyState === EventSource.CLOSED) {
          // The browser gave up (e.g. an error status during a restart): start again, a little later each time.
          setTimeout(connect, backoff);
          backoff = Math.min(backoff * 2, 30000);
        }
      });
    }
    connect();
    window.addEventListener("pagehide", () => source && source.close());
  }

  // --- repository typeahead ---------------------------------------------------------------------------------
  function typeahead(input) {
    const list = document.getElementById(input.getAttribute("list"));
    if (!list) return;
    let timer = null;
    let asked = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const text = input.value.trim();
        if (text === asked) return;
        asked = text;
        try {
          const response = await fetch(input.dataset.typeahead + "?q=" + encodeURIComponent(text), {
            credentials: "same-origin",
            headers: { Accept: "application/json" },
          });
          if (!response.ok) return;
          const names = await response.json();
          list.replaceChildren(
            ...names.map((name) => {
              const option = document.createElement("option");
              option.value = name;
              return option;
            }),
          );
        } catch (error) {
          // no suggestions, no harm
        }
      }, 150);
    });
  }

  // --- keep relative times current on a page left open --------------------------------------------------------
  const UNITS = [
    [60, 1, "second"],
    [3600, 60, "minute"],
    [86400, 3600, "hour"],
    [86400 * 30, 86400, "day"],
    [86400 * 365, 86400 * 30, "month"],
    [Infinity, 86400 * 365, "year"],
  ];

  function relative(date) {
    let seconds = (Date.now() - date.getTime()) / 1000;
    const future = seconds < 0;
    seconds = Math.abs(seconds);
    for (const [limit, size, unit] of UNITS) {
      if (seconds < limit) {
        const n = Math.floor(seconds / size);
        if (unit === "second" && n < 10) return "just now";
        const text = n + " " + unit + (n === 1 ? "" : "s");
        return future ? "in " + text : text + " ago";
      }
    }
    return "";
  }

  setInterval(() => {
    for (const el of document.querySelectorAll("time[datetime]")) {
      const date = new Date(el.getAttribute("datetime"));
      if (!Number.isNaN(date.getTime())) el.textContent = relative(date);
    }
  }, 30000);

  document.querySelectorAll("input[data-typeahead]").forEach(typeahead);
  follow();
  if (document.querySelector("[data-live-region][data-live-behind]")) scheduleRefresh();
})();
