"""The HTTP side of the GitHub client: gidgethub's `GitHubAPI` over an httpx `AsyncClient`, with the waits that
`core.github_limits` decides.

gidgethub builds each request and reads each answer (`sansio`); this class sends it (`_request`), holds it back
while its credential's window is nearly spent (`manage_rate_limit`), and decides after a failed answer whether to
wait and send it again (`handle_rate_limit_error`). A failed connection or a timeout never reaches gidgethub: it is
retried here, on the same attempt count. Every wait goes through `sleep`, measured on `clock`, so a test drives
time. Mutations (anything but GET and HEAD) are sent one at a time, their starts `mutation_interval` apart on
`clock`, as GitHub asks of integrations.

Which request is being made (its templated route, whose rate-limit window it spends, how often it failed) travels
in a context variable: gidgethub's `_make_request` passes nothing of the caller's down to `_request`.
"""

from __future__ import annotations

import asyncio
import http
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from gidgethub import HTTPException, RedirectionException
from gidgethub.abc import GitHubAPI
from uritemplate import variable

from ghingest.core.github_limits import RESERVE, Backoff, RateLimitSnapshot, backoff, pause_until
from ghingest.ports.clock import Clock
from ghingest.ports.github_api import (
    GitHubAuthError,
    GitHubError,
    GitHubRateLimited,
    GitHubRefused,
    GitHubUnavailable,
    RequestRecord,
)

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
_SAFE = frozenset({"GET", "HEAD"})

log = structlog.get_logger("ghingest.github")


@dataclass(frozen=True, slots=True)
class Auth:
    """The credential of a request: `bucket` names whose rate-limit window it spends (`anonymous`, `token`, `app`,
    `installation:<id>`), `header` is the `Authorization` value (never printed)."""

    bucket: str
    header: str | None = field(default=None, repr=False)


ANONYMOUS = Auth("anonymous")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    data: Any
    next_url: str | None  # the Link header's rel="next"
    headers: Mapping[str, str]


@dataclass(slots=True)
class _Call:
    """One logical request, over its attempts."""

    route: str
    bucket: str
    target: str = ""  # "METHOD /path" of the last attempt, for messages
    failures: int = 0
    status: int = 0  # of the last answer, as sent (before any normalisation for gidgethub)
    headers: Mapping[str, str] = field(default_factory=dict)


_CALL: ContextVar[_Call | None] = ContextVar("ghingest_github_call", default=None)


class Transport(GitHubAPI):
    def __init__(
        self,
        *,
        api_url: str,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]],
        mutation_interval: float,
        max_retries: int,
        max_wait: float,
        reserve: int = RESERVE,
        timeout: float,
        user_agent: str,
        on_request: Callable[[RequestRecord], None] | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        super().__init__(user_agent, base_url=api_url)
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=True, trust_env=False)
        self._clock = clock
        self._sleep = sleep
        self._mutation_interval = mutation_interval
        self._mutations = asyncio.Lock()
        self._last_mutation: float | None = None
        self._max_retries = max_retries
        self._max_wait = max_wait
        self._reserve = reserve
        self._on_request = on_request
        self._windows: dict[str, RateLimitSnapshot] = {}  # per bucket
        self.requests = 0
        self.snapshot: RateLimitSnapshot | None = None

    async def request(
        self,
        method: str,
        url: str,
        url_vars: Mapping[str, variable.VariableValue] | None = None,
        *,
        route: str,
        auth: Auth,
        etag: str | None = None,
    ) -> Answer:
        """Send one request, with its retries; with `etag`, a 304 is an answer (status 304, no data)."""
        headers = {"x-github-api-version": API_VERSION}
        if auth.header is not None:
            headers["authorization"] = auth.header
        if etag is not None:
            headers["if-none-match"] = etag
        call = _Call(route=route, bucket=auth.bucket)
        reset = _CALL.set(call)
        try:
            data, more, status = await self._make_request(method, url, url_vars, b"", ACCEPT, extra_headers=headers)
        except RedirectionException as exc:
            if exc.status_code == 304 and etag is not None:
                return Answer(304, None, None, call.headers)
            raise GitHubRefused(f"{call.target} answered {call.status}", status=call.status) from None
        except HTTPException as exc:
            raise _refusal(call, str(exc)) from None
        except (ValueError, KeyError):
            # gidgethub reading a body that is not the JSON it should be: a JSONDecodeError or a UnicodeDecodeError
            # is a ValueError, a 422 without a message a KeyError.
            error = GitHubRefused if 400 <= call.status < 500 else GitHubUnavailable
            raise error(f"{call.target} answered {call.status} with an unreadable body", status=call.status) from None
        finally:
            _CALL.reset(reset)
        return Answer(status, data, more, call.headers)

    # --- gidgethub's hooks ------------------------------------------------------------------------------------

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        call = _current()
        parts = urlsplit(url)
        call.target = f"{method} {parts.path}"
        while True:
            try:
                response = await self._exchange(method, url, headers, body, call)
            except httpx.RequestError as exc:  # no answer: refused, reset, timed out, a broken stream
                call.failures += 1
                call.status = 0
                verdict = backoff(0, {}, message=None, attempt=call.failures, now=self._clock.now(),
                                  max_retries=self._max_retries)  # fmt: skip
                assert verdict is not None
                await self._wait_or_fail(verdict, call, reason=type(exc).__name__)
                continue
            call.status = response.status_code
            call.headers = response.headers
            snapshot = RateLimitSnapshot.from_headers(response.headers)
            if snapshot is not None:
                self.snapshot = self._windows[call.bucket] = snapshot
            return _known_status(response.status_code), response.headers, response.content

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)

    async def manage_rate_limit(self, *, method: str, url: str) -> None:
        call = _current()
        now = self._clock.now()
        until = pause_until(self._windows.get(call.bucket), now=now, reserve=self._reserve)
        if until is None:
            return
        if until - now > self._max_wait:
            raise GitHubRateLimited(
                f"{method} {urlsplit(url).path}: the rate limit's reserve is reached until {until:.0f}",
                retry_at=until,
            )
        log.info("github.pause", route=call.route, bucket=call.bucket, wait=round(until - now, 3))
        await self.sleep(until - now)

    async def handle_rate_limit_error(self, *, method: str, url: str, exception: HTTPException, attempt: int) -> bool:
        # `attempt` counts gidgethub's answers only; `call.failures` counts failed connections too, so that
        # `max_retries` bounds both together.
        call = _current()
        call.failures += 1
        message = str(exception)
        verdict = backoff(call.status, exception.headers, message=message, attempt=call.failures,
                          now=self._clock.now(), max_retries=self._max_retries)  # fmt: skip
        if verdict is None:
            return False
        await self._wait_or_fail(verdict, call, reason=message)
        return True

    # --- sending ----------------------------------------------------------------------------------------------

    async def _exchange(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, call: _Call
    ) -> httpx.Response:
        mutation = method not in _SAFE
        async with self._mutations if mutation else nullcontext():
            if mutation:
                if self._last_mutation is not None:
                    wait = self._last_mutation + self._mutation_interval - self._clock.now()
                    if wait > 0:
                        await self.sleep(wait)
                self._last_mutation = self._clock.now()
            self.requests += 1
            started = time.perf_counter()
            try:
                response = await self._http.request(method, url, headers=dict(headers), content=body)
            except httpx.RequestError:
                self._record(method, call, 0, started)
                raise
            self._record(method, call, response.status_code, started)
            return response

    def _record(self, method: str, call: _Call, status: int, started: float) -> None:
        if self._on_request is not None:
            self._on_request(RequestRecord(method, call.route, status, status == 304, time.perf_counter() - started))

    async def _wait_or_fail(self, verdict: Backoff, call: _Call, *, reason: str) -> None:
        now = self._clock.now()
        wait = max(0.0, verdict.retry_at - now)
        if verdict.limit.is_rate_limit:
            if not verdict.retry:
                raise GitHubRateLimited(
                    f"{call.target}: the {verdict.limit} rate limit outlasted {call.failures} attempts",
                    status=call.status, retry_at=verdict.retry_at,
                )  # fmt: skip
            if wait > self._max_wait:
                raise GitHubRateLimited(
                    f"{call.target}: the {verdict.limit} rate limit asks for {wait:.0f} s, more than the client waits",
                    status=call.status, retry_at=verdict.retry_at,
                )  # fmt: skip
        elif not verdict.retry or wait > self._max_wait:
            what = f"answered {call.status}" if call.status else f"failed ({reason})"
            raise GitHubUnavailable(f"{call.target} {what}, {call.failures} attempts", status=call.status)
        log.info("github.retry", route=call.route, status=call.status, limit=str(verdict.limit),
                 attempt=call.failures, wait=round(wait, 3))  # fmt: skip
        await self.sleep(wait)

    async def aclose(self) -> None:
        await self._http.aclose()


def _current() -> _Call:
    call = _CALL.get()
    if call is None:  # a request made through gidgethub's own methods, not `Transport.request`
        raise RuntimeError("requests go through Transport.request")
    return call


def _refusal(call: _Call, message: str) -> GitHubError:
    status = call.status
    text = f"{call.target} answered {status}: {message}"
    if status == 401:
        return GitHubAuthError(text, status=status)
    if status >= 500 or status == 0:
        return GitHubUnavailable(text, status=status)
    return GitHubRefused(text, status=status)


def _known_status(status: int) -> int:
    """gidgethub builds an `HTTPStatus` from every status: one it does not know (520, 499 …) is read as its class."""
    try:
        http.HTTPStatus(status)
    except ValueError:
        return status // 100 * 100 if 100 <= status <= 599 else 500
    return status
