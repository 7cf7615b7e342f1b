// ghingest dashboard: live updates over Server-Sent Events, and the repository typeahead. No framework.
// After a live part of the page is re-rendered, it dispatches "ghingest:refreshed" (bubbling): scripts that keep
// state on its elements listen for it.
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

  // --- re-render a live part of the page from the server, keeping focus, form input and filters intact ---------
  // A part is the page's region ([data-live-region], fetched from the page's own URL), or a section
  // ([data-live-section="kind,…"], with an id) that a change of one of its kinds refreshes alone, fetched from its
  // data-live-src (asked with the page's own query: its filters and notices). Refreshes of a part are at least
  // MIN_REFRESH_MS apart, and a change that comes while one is in flight brings another after it.
  // A page may ask for a slower pace (the overview: its figures change at most that often on the server).
  const MIN_REFRESH_MS = Math.max(1000, Number(body.dataset.liveMinMs || 0));
  const REGION = "region";
  const parts = new Map(); // part key -> { pending, inFlight, again, last }

  function keysIn(root) {
    return new Set(Array.from(root.querySelectorAll("[data-key]"), (el) => el.dataset.key));
  }

  function find(root, key) {
    return key === REGION ? root.querySelector("[data-live-region]") : root.querySelector(key);
  }

  function sectionKey(section) {
    return "#" + CSS.escape(section.id);
  }

  function partFor(kind) {
    for (const section of document.querySelectorAll("[data-live-section][id]")) {
      if (section.dataset.liveSection.split(",").includes(kind)) return sectionKey(section);
    }
    return REGION;
  }

  function allParts() {
    const region = find(document, REGION);
    const sections = Array.from(document.querySelectorAll("[data-live-section][id]"));
    return [REGION, ...sections.filter((s) => !(region && region.contains(s))).map(sectionKey)];
  }

  function sourceOf(key, part) {
    if (key === REGION || !part.dataset.liveSrc) return location.href;
    const url = new URL(part.dataset.liveSrc, location.href);
    if (!url.search) url.search = location.search;
    return url.href;
  }

  // What the reader chose or typed in a part: boxes by name and value, other fields by id.
  function formState(root) {
    const boxes = new Map();
    const values = new Map();
    for (const el of root.querySelectorAll("input, select, textarea")) {
      if (el.type === "checkbox" || el.type === "radio") boxes.set(el.name + "=" + el.value, el.checked);
      else if (el.id && el.type !== "hidden") values.set(el.id, el.value);
    }
    return { boxes, values };
  }

  function restoreForm(root, state) {
    for (const el of root.querySelectorAll("input, select, textarea")) {
      if (el.type === "checkbox" || el.type === "radio") {
        const checked = state.boxes.get(el.name + "=" + el.value);
        if (checked !== undefined) el.checked = checked;
      } else if (el.id && state.values.has(el.id)) {
        const value = state.values.get(el.id);
        if (el.tagName !== "SELECT" || Array.from(el.options).some((o) => o.value === value)) el.value = value;
      }
    }
  }

  async function refresh(key) {
    const state = parts.get(key);
    state.pending = null;
    const part = find(document, key);
    if (!part) return;
    if (state.inFlight) {
      state.again = true;
      return;
    }
    state.inFlight = true;
    state.last = Date.now();
    try {
      const response = await fetch(sourceOf(key, part), {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.redirected && new URL(response.url).pathname === "/login") {
        setStatus("offline", "Signed out");
        return;
      }
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = find(doc, key);
      if (!fresh) return;
      const before = keysIn(part);
      const form = formState(part);
      const focused = part.contains(document.activeElement) ? document.activeElement : null;
      const focusHref = focused && focused.getAttribute("href");
      part.replaceChildren(...Array.from(fresh.childNodes, (node) => document.importNode(node, true)));
      restoreForm(part, form);
      // Figures computed before the newest change (another view's, a moment ago): ask again after the throttle.
      if (fresh.hasAttribute("data-live-behind")) scheduleRefresh(key);
      if (focused) {
        // Keep the keyboard where it was: the same link in the new content, else the part itself.
        const again = focusHref && part.querySelector('a[href="' + CSS.escape(focusHref) + '"]');
        if (again) again.focus();
        else {
          part.setAttribute("tabindex", "-1");
          part.focus();
        }
      }
      let added = 0;
      for (const el of part.querySelectorAll("[data-key]")) {
        if (!before.has(el.dataset.key)) {
          el.classList.add("is-new");
          added += 1;
        }
      }
      if (added && announcer) announcer.textContent = added === 1 ? "1 new item" : added + " new items";
      part.dispatchEvent(new CustomEvent("ghingest:refreshed", { bubbles: true }));
    } catch (error) {
      // The server is away; the stream's reconnection will bring us back here.
    } finally {
      state.inFlight = false;
      if (state.again) {
        state.again = false;
        scheduleRefresh(key);
      }
    }
  }

  function scheduleRefresh(key) {
    let state = parts.get(key);
    if (!state) parts.set(key, (state = { pending: null, inFlight: false, again: false, last: 0 }));
    if (state.pending) return;
    const wait = Math.max(0, state.last + MIN_REFRESH_MS - Date.now());
    state.pending = setTimeout(() => refresh(key), wait);
  }

  function refreshAll() {
    allParts().forEach(scheduleRefresh);
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
        if (wasOffline) refreshAll();
        wasOffline = false;
        seq = event.lastEventId || seq;
      });
      source.addEventListener("reset", (event) => {
        seq = event.lastEventId || seq;
        refreshAll();
      });
      source.addEventListener("bye", () => {
        // The server is shutting down: say so now (not when a reconnection fails), and come back when it is up.
        source.close();
        clearTimeout(offlineTimer);
        offlineTimer = null;
        wasOffline = true;
        setStatus("offline", "Offline – reconnecting…");
        setTimeout(connect, backoff);
      });
      for (const kind of kinds) {
        source.addEventListener(kind, (event) => {
          seq = event.lastEventId || seq;
          if (ref) {
            const data = JSON.parse(event.data);
            if (String(data.ref) !== ref) return;
          }
          scheduleRefresh(partFor(kind));
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

  // --- "select all" checkboxes: one ticks (or clears) every checkbox of its form named by data-select-all ------
  // (hidden until this runs: without a script it could do nothing, and "Retry all" covers that case). Delegated, so
  // that a live refresh that replaces the boxes keeps them working.
  function showSelectAll(root) {
    root.querySelectorAll("input[data-select-all]").forEach((box) => {
      box.hidden = false;
      syncSelectAll(box);
    });
  }

  function boxesOf(box) {
    return Array.from(box.form.elements).filter((el) => el.type === "checkbox" && el.name === box.dataset.selectAll);
  }

  function syncSelectAll(box) {
    if (!box.form) return;
    const all = boxesOf(box);
    const ticked = all.filter((el) => el.checked).length;
    box.checked = ticked > 0 && ticked === all.length;
    box.indeterminate = ticked > 0 && ticked < all.length;
  }

  document.addEventListener("change", (event) => {
    const el = event.target;
    if (!(el instanceof HTMLInputElement) || el.type !== "checkbox" || !el.form) return;
    for (const box of Array.from(el.form.elements).filter((other) => other.dataset && other.dataset.selectAll)) {
      if (el === box) boxesOf(box).forEach((other) => (other.checked = box.checked));
      else if (el.name === box.dataset.selectAll) syncSelectAll(box);
    }
  });
  document.addEventListener("ghingest:refreshed", (event) => showSelectAll(event.target));

  document.querySelectorAll("input[data-typeahead]").forEach(typeahead);
  showSelectAll(document);
  follow();
  if (document.querySelector("[data-live-region][data-live-behind]")) scheduleRefresh(REGION);
})();
