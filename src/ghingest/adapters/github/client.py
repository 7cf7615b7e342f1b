"""The REST calls ghingest makes to GitHub: a hook's deliveries and their redelivery (reconciliation), a repository
and its releases (release tracking, with conditional requests that cost no rate limit when nothing changed).

One client per process, shared by every task: it keeps the connections, the App's tokens and each credential's
rate-limit window. Retries, waits and mutation spacing are the transport's (`_transport`), the credentials
`auth`'s; this module names the resources.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from uritemplate import variable

from ghingest.adapters.github._transport import Answer, Auth, Transport
from ghingest.adapters.github.auth import AppCredentials, Credentials
from ghingest.core.github_hooks import HookDelivery, HookKind, HookRef
from ghingest.core.github_limits import RESERVE, RateLimitSnapshot
from ghingest.core.int64 import is_int64
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.github_api import Conditional, GitHubAuthError, GitHubUnavailable, RequestRecord

T = TypeVar("T")

MAX_PER_PAGE = 100
_DELIVERIES_ROUTE = {
    HookKind.REPOSITORY: "/repos/{owner}/{repo}/hooks/{hook_id}/deliveries",
    HookKind.ORGANIZATION: "/orgs/{org}/hooks/{hook_id}/deliveries",
    HookKind.APP: "/app/hook/deliveries",
}
_FULL_NAME = re.compile(r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<repo>[A-Za-z0-9._-]{1,100})")


class GitHubClient:
    """`token`: `Authorization: Bearer` on every request. `app`: the App's JWT for its own hook, an installation
    token for a repository's or an organization's resources (a public repository the App is not installed on is
    read without one). Neither: unauthenticated (public repositories' releases). `api_url` is GitHub Enterprise
    Server's `https://HOST/api/v3` there. Waits longer than `max_wait` are not made: `GitHubRateLimited` says when.
    """

    def __init__(
        self,
        *,
        api_url: str = "https://api.github.com",
        token: str | None = None,
        app: AppCredentials | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        mutation_interval: float = 1.0,
        max_retries: int = 3,
        max_wait: float = 900.0,
        timeout: float = 10.0,
        user_agent: str = "ghingest",
        on_request: Callable[[RequestRecord], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limit_reserve: int = RESERVE,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("api_url must be an absolute http:// or https:// URL")
        self.api_url = api_url.rstrip("/")
        self._origin = (parts.scheme, parts.netloc)
        self._transport = Transport(
            api_url=self.api_url,
            clock=clock,
            sleep=sleep,
            mutation_interval=mutation_interval,
            max_retries=max_retries,
            max_wait=max_wait,
            reserve=rate_limit_reserve,
            timeout=timeout,
            user_agent=user_agent,
            on_request=on_request,
            transport=transport,
        )
        self._credentials = Credentials(self._transport, token=token, app=app, clock=clock)

    @property
    def requests(self) -> int:
        """HTTP requests made, retries and token requests included."""
        return self._transport.requests

    @property
    def rate_limit(self) -> RateLimitSnapshot | None:
        """From the last answer that carried `x-ratelimit-*` headers."""
        return self._transport.snapshot

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, auth={self._credentials.kind!r})"

    # --- webhook deliveries -----------------------------------------------------------------------------------

    async def hook_deliveries(
        self, hook: HookRef, *, since: float | None = None, per_page: int = MAX_PER_PAGE
    ) -> AsyncIterator[Sequence[HookDelivery]]:
        """A hook's deliveries, a page at a time, newest first, following the Link header's rel="next" (a
        `cursor=` parameter); the last page read is the first that holds a delivery older than `since`. Items that
        are not shaped as GitHub documents are skipped."""
        route = _DELIVERIES_ROUTE[hook.kind]
        url: str | None = hook.deliveries_path + "{?per_page}"
        url_vars: Mapping[str, variable.VariableValue] | None = {"per_page": str(_per_page(per_page))}
        while url is not None:
            answer = await self._call("GET", url, url_vars, route=route, auth=await self._hook_auth(hook))
            if not isinstance(answer.data, list):
                raise GitHubUnavailable(f"GET {hook.deliveries_path}: the answer is not a list", status=answer.status)
            page = [d for d in map(HookDelivery.from_api, answer.data) if d is not None]
            if page:
                yield page
            if since is not None and any(d.delivered_at < since for d in page):
                return
            url, url_vars = self._next_page(answer), None

    async def redeliver(self, hook: HookRef, github_delivery_id: int) -> None:
        """Ask GitHub to send one of the hook's deliveries again (it answers 202, and sends it soon after)."""
        if not is_int64(github_delivery_id) or github_delivery_id <= 0:
            raise ValueError("a delivery's id is a positive 64-bit integer")
        route = _DELIVERIES_ROUTE[hook.kind] + "/{delivery_id}/attempts"
        await self._call("POST", hook.redelivery_path(github_delivery_id), None, route=route,
                         auth=await self._hook_auth(hook))  # fmt: skip

    # --- repositories and releases ----------------------------------------------------------------------------

    async def repository(self, full_name: str) -> Mapping[str, Any]:
        """`GET /repos/{owner}/{repo}`: its `id`, its `full_name` as GitHub spells it, `private` …"""
        owner, repo = _split(full_name)
        auth = await self._credentials.for_repository(owner, repo, anonymous=True)
        route = "/repos/{owner}/{repo}"
        answer = await self._call("GET", route, {"owner": owner, "repo": repo}, route=route, auth=auth)
        if not isinstance(answer.data, Mapping):
            raise GitHubUnavailable(f"GET /repos/{owner}/{repo}: the answer is not an object", status=answer.status)
        return answer.data

    async def releases(
        self, full_name: str, *, etag: str | None, per_page: int = 30
    ) -> Conditional[list[Mapping[str, Any]]]:
        """The newest releases, unless they did not change since the answer that carried `etag` (a 304 costs no
        rate limit)."""
        owner, repo = _split(full_name)
        auth = await self._credentials.for_repository(owner, repo, anonymous=True)
        route = "/repos/{owner}/{repo}/releases"
        url_vars = {"owner": owner, "repo": repo, "per_page": str(_per_page(per_page))}
        answer = await self._call("GET", route + "{?per_page}", url_vars, route=route, auth=auth, etag=etag)
        if answer.status == 304:
            return Conditional(status=304, value=None, etag=etag)
        if not isinstance(answer.data, list):
            raise GitHubUnavailable(f"GET /repos/{owner}/{repo}/releases: the answer is not a list", status=200)
        items = [item for item in answer.data if isinstance(item, Mapping)]
        return Conditional(status=answer.status, value=items, etag=answer.headers.get("etag"))

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> GitHubClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- internals --------------------------------------------------------------------------------------------

    async def _hook_auth(self, hook: HookRef) -> Auth:
        if hook.kind is HookKind.APP:
            return self._credentials.app_jwt()
        if hook.kind is HookKind.ORGANIZATION and hook.org is not None:
            return await self._credentials.for_organization(hook.org)
        if hook.kind is not HookKind.REPOSITORY or hook.owner is None or hook.repo is None:
            raise ValueError(f"{hook!r} names no hook")
        return await self._credentials.for_repository(hook.owner, hook.repo, anonymous=False)

    async def _call(
        self,
        method: str,
        url: str,
        url_vars: Mapping[str, variable.VariableValue] | None,
        *,
        route: str,
        auth: Auth,
        etag: str | None = None,
    ) -> Answer:
        try:
            return await self._transport.request(method, url, url_vars, route=route, auth=auth, etag=etag)
        except GitHubAuthError:
            self._credentials.forget(auth)
            raise

    def _next_page(self, answer: Answer) -> str | None:
        """The next page's URL; one on another origin is refused (it would be sent the credential)."""
        if answer.next_url is None:
            return None
        parts = urlsplit(answer.next_url)
        if (parts.scheme, parts.netloc) != self._origin:
            raise GitHubUnavailable("the next page's link leaves the API's origin", status=answer.status)
        return answer.next_url


def _split(full_name: str) -> tuple[str, str]:
    match = _FULL_NAME.fullmatch(full_name.strip())
    if match is None:
        raise ValueError(f"{full_name[:120]!r} is not a repository: write OWNER/REPO")
    return match["owner"], match["repo"]


def _per_page(per_page: int) -> int:
    return max(1, min(MAX_PER_PAGE, per_page))
