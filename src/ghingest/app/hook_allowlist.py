"""The webhook route's source allow-list: the networks GitHub's `/meta` lists as `hooks`, plus
`GHINGEST_WEBHOOK_ALLOWED_NETWORKS`; kept on disk, refreshed in the background, looked up in memory per request.

- **On** with `GHINGEST_GITHUB_HOOKS_ALLOWLIST=true` (GitHub's list and the configured networks), or with
  `GHINGEST_WEBHOOK_ALLOWED_NETWORKS` alone (only those: no `/meta`, e.g. a GitHub Enterprise Server whose `/meta`
  lists no hooks). Neither: `from_settings` builds nothing and the route is as it always was.
- **Kept on disk** at `<data_dir>/github-meta-hooks.json` (temp file, fsync, rename, fsync of the folder), read
  when the allow-list is built: a restart without network keeps the last good list. A file that cannot be read or
  is not one this module wrote for the same `/meta` URL is reported and ignored (and replaced by the next fetch).
- **Refreshed** by `run`, a background task of the processes that receive webhooks (`Runtime.start`): at once
  unless the cache was confirmed within the interval, then every `GHINGEST_GITHUB_META_REFRESH_INTERVAL` seconds
  (±10 %). A conditional GET that answers `304` keeps the list; a failure keeps it too, is logged (never with the
  answer's text) and counted (`ghingest_github_meta_refreshes_total{result="error"}`), and is retried sooner:
  after 15 s, doubling, with jitter, at most the interval (`core.retry.RetryPolicy`).
- **Looked up** by `verdict`, in memory (`core.networks.NetworkSet`): `ALLOWED`, `REFUSED` (403), or `UNKNOWN`
  while GitHub's list was never loaded (503 with `Retry-After`; `/readyz` says why, `not_ready`). An address in
  the configured networks is accepted even then.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ghingest.adapters.github.meta import NOT_MODIFIED, MetaClient, MetaUnavailable, is_entity_tag
from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.app.receiver import Verdict
from ghingest.core.networks import EMPTY, InvalidNetworks, NetworkSet, parse_networks
from ghingest.core.retry import RetryPolicy
from ghingest.ports.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from ghingest.app.settings import Settings

CACHE_FILE = "github-meta-hooks.json"
CACHE_VERSION = 1
MAX_CACHE_BYTES = 1024 * 1024
RETRY_BASE_DELAY = 15.0  # seconds before the first retry of a failed refresh (then doubling, up to the interval)
JITTER = 0.1  # of the interval, either way: processes started together do not fetch together


class CacheInvalid(Exception):
    """The cache file is unreadable or not a list this module wrote for this `/meta` URL."""


@dataclass(frozen=True, slots=True)
class Cached:
    hooks: NetworkSet
    etag: str | None
    checked_at: float  # UNIX time of the last answer that confirmed the list (200 or 304)


def read_cache(path: Path, *, url: str) -> Cached:
    """The list kept at `path` for `url`; FileNotFoundError when there is none, CacheInvalid for a bad one."""
    with path.open("rb") as handle:
        try:
            data = handle.read(MAX_CACHE_BYTES + 1)
        except OSError as exc:
            raise CacheInvalid(exc.strerror or exc.__class__.__name__) from None
    if len(data) > MAX_CACHE_BYTES:
        raise CacheInvalid(f"larger than {MAX_CACHE_BYTES} bytes")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise CacheInvalid("not JSON") from None
    if not isinstance(document, dict) or document.get("version") != CACHE_VERSION:
        raise CacheInvalid(f"not a version {CACHE_VERSION} cache document")
    if document.get("url") != url:
        raise CacheInvalid("kept for another /meta URL")
    try:
        hooks = parse_networks(document.get("hooks"), where="hooks")
    except InvalidNetworks as exc:
        raise CacheInvalid(exc.summary) from None
    etag, checked_at = document.get("etag"), document.get("checked_at")
    if not hooks:
        raise CacheInvalid("the hooks list is empty")
    if etag is not None and not (isinstance(etag, str) and is_entity_tag(etag)):
        raise CacheInvalid("the etag is not an entity tag")
    if isinstance(checked_at, bool) or not isinstance(checked_at, int | float) or not math.isfinite(checked_at):
        raise CacheInvalid("checked_at is not a time")
    return Cached(hooks, etag, float(checked_at))


def cache_document(cached: Cached, *, url: str) -> bytes:
    document = {
        "version": CACHE_VERSION,
        "url": url,
        "etag": cached.etag,
        "checked_at": cached.checked_at,
        "hooks": cached.hooks.texts(),
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old file or the new one, never a part of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself is durable
    finally:
        os.close(folder)


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    return stop.is_set()


class HookAllowlist:
    """The networks in force and their refresh. Without `meta`, only `static` (nothing to fetch or keep)."""

    def __init__(
        self,
        *,
        static: NetworkSet = EMPTY,
        metrics: Metrics,
        meta: MetaClient | None = None,
        cache_path: Path | None = None,
        interval: float = 3600.0,
        retry_base_delay: float = RETRY_BASE_DELAY,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self.static = static
        self._metrics = metrics
        self._meta = meta
        self._cache_path = cache_path
        self._interval = interval
        self._retry = RetryPolicy(
            max_attempts=2**31, base_delay=min(retry_base_delay, interval), max_delay=interval, jitter=0.5
        )
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - spreading refreshes, not a secret
        self._hooks: NetworkSet | None = None  # GitHub's list; None until one is loaded
        self._etag: str | None = None
        self._checked_at: float | None = None
        self._failures = 0
        self._last_error: str | None = None
        self._next_at: float | None = None
        self._in_force = static
        self._log = get_logger("ghingest.hook_allowlist")
        metrics.webhook_allowed_networks.set(len(static))

    @classmethod
    def from_settings(
        cls, settings: Settings, *, metrics: Metrics, clock: Clock = SYSTEM_CLOCK
    ) -> HookAllowlist | None:
        """The allow-list the settings ask for, its cache read; None when they ask for none."""
        if not settings.github_hooks_allowlist and not settings.webhook_allowed_networks:
            return None
        static = parse_networks(settings.webhook_allowed_networks)  # validated with the settings
        if not settings.github_hooks_allowlist:
            return cls(static=static, metrics=metrics, clock=clock)
        allowlist = cls(
            static=static,
            metrics=metrics,
            meta=MetaClient(settings.github_api_url),
            cache_path=settings.data_dir / CACHE_FILE,
            interval=settings.github_meta_refresh_interval,
            clock=clock,
        )
        allowlist.load_cache()
        return allowlist

    # --- the lookup (every webhook request) -----------------------------------------------------------------------

    def verdict(self, host: str | None) -> Verdict:
        if self._in_force.contains(host):
            return Verdict.ALLOWED
        return Verdict.UNKNOWN if self._meta is not None and self._hooks is None else Verdict.REFUSED

    def retry_after(self) -> int:
        """Seconds until the next fetch of `/meta` (1 to 300), for the `Retry-After` of a 503."""
        wait = 0.0 if self._next_at is None else self._next_at - self._clock.now()
        return int(min(300.0, max(1.0, math.ceil(wait))))

    @property
    def hooks(self) -> NetworkSet | None:
        """GitHub's list in force; None before one is loaded (or when `/meta` is not used)."""
        return self._hooks

    @property
    def networks(self) -> NetworkSet:
        """Every network accepted now."""
        return self._in_force

    def not_ready(self) -> str | None:
        """Why webhooks cannot be judged yet (for `/readyz`); None once they can."""
        if self._meta is None or self._hooks is not None:
            return None
        why = f"the last attempt failed: {self._last_error}" if self._last_error else "it has not answered yet"
        return f"the webhook source allow-list is not loaded: GitHub's /meta ({self._meta.url}) is needed, and {why}"

    # --- the cache and the refresh --------------------------------------------------------------------------------

    def load_cache(self) -> bool:
        """Adopt the list kept on disk, if there is a good one (at start: before any fetch)."""
        if self._cache_path is None or self._meta is None:
            return False
        try:
            cached = read_cache(self._cache_path, url=self._meta.url)
        except FileNotFoundError:
            return False
        except (CacheInvalid, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._log.warning("github_meta.cache_ignored", path=str(self._cache_path), reason=reason)
            return False
        self._adopt(cached.hooks, cached.etag, cached.checked_at)
        self._log.info("github_meta.hooks_loaded", source="cache", networks=len(cached.hooks))
        return True

    async def refresh(self) -> bool:
        """Fetch `/meta` once (conditionally, when a list is held); adopt and keep what it answers. False (and the
        list held kept) when it failed."""
        if self._meta is None:
            return True
        try:
            answer = await self._meta.fetch(etag=self._etag if self._hooks is not None else None)
        except MetaUnavailable as exc:
            return self._failed(str(exc))
        except Exception as exc:  # a bug must not end the refreshes; it is reported by its class
            return self._failed(f"unexpected {exc.__class__.__name__}")
        now = self._clock.now()
        if answer is NOT_MODIFIED:
            result = "not_modified"
            self._checked_at = now
            self._metrics.github_meta_checked.set(now)
        else:
            result = "ok"
            if answer.networks != self._hooks:
                self._log.info(
                    "github_meta.hooks_loaded",
                    source="meta",
                    networks=len(answer.networks),
                    previously=None if self._hooks is None else len(self._hooks),
                )
            self._adopt(answer.networks, answer.etag, now)
        self._failures = 0
        self._last_error = None
        self._metrics.github_meta_refreshes.labels(result).inc()
        await asyncio.to_thread(self._save)  # an fsync never on the event loop that acknowledges deliveries
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until `stop` is set (a fetch in flight is then abandoned); close the client."""
        if self._meta is None:
            return
        try:
            delay = self._first_delay()
            self._next_at = self._clock.now() + delay
            while not await _stopped_within(stop, delay):
                refresh = asyncio.create_task(self.refresh())
                stopping = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({refresh, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if refresh not in done:
                    refresh.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await refresh
                    break
                delay = self._next_delay(refresh.result())
                self._next_at = self._clock.now() + delay
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool to `/meta` (on the event loop that used it)."""
        if self._meta is not None:
            await self._meta.aclose()

    def _first_delay(self) -> float:
        if self._checked_at is None:
            return 0.0
        return max(0.0, min(self._interval, self._checked_at + self._interval - self._clock.now()))

    def _next_delay(self, succeeded: bool) -> float:
        if succeeded:
            return self._interval * (1 + JITTER * (2 * self._rng.random() - 1))
        return self._retry.delay(self._failures, rng=self._rng)

    def _adopt(self, hooks: NetworkSet, etag: str | None, checked_at: float) -> None:
        self._hooks = hooks
        self._etag = etag
        self._checked_at = checked_at
        self._in_force = hooks | self.static  # one reference swapped: a lookup sees the old set or the new one
        self._metrics.webhook_allowed_networks.set(len(self._in_force))
        self._metrics.github_meta_checked.set(checked_at)

    def _failed(self, reason: str) -> bool:
        self._failures += 1
        self._last_error = reason
        self._metrics.github_meta_refreshes.labels("error").inc()
        self._log.warning(
            "github_meta.refresh_failed",
            reason=reason,
            failures=self._failures,
            kept=None if self._hooks is None else len(self._hooks),
        )
        return False

    def _save(self) -> None:
        if self._cache_path is None or self._meta is None or self._hooks is None or self._checked_at is None:
            return
        cached = Cached(self._hooks, self._etag, self._checked_at)
        try:
            write_atomically(self._cache_path, cache_document(cached, url=self._meta.url))
        except OSError as exc:
            self._log.warning(
                "github_meta.cache_write_failed", path=str(self._cache_path), reason=exc.strerror or str(exc)
            )
