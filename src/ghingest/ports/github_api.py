"""What the reconciler and the release tracker ask of GitHub's REST API (`ghingest.adapters.github` answers over
HTTP; tests answer with a fake GitHub server).

Errors name the request (method and path) and keep the API's own message, bounded; never a token, a JWT, a key or a
payload:

GitHubError                     status: the HTTP status, 0 when there was no answer (or no request was sent)
├── GitHubUnavailable           5xx, a failed connection or a timeout, after the retries: try again later
├── GitHubRateLimited           a limit asks for a longer wait than the client may make: `retry_at` says when
└── GitHubRefused               any other 4xx (404, 410, 422, 400 …): sending it again will not help
    └── GitHubAuthError         401, or App credentials that do not work (a bad key, no installation)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ghingest.core.github_hooks import HookDelivery, HookRef
from ghingest.core.github_limits import RateLimitSnapshot

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Conditional(Generic[T]):
    """The answer to a conditional GET (`If-None-Match`): the value with its ETag, or 304 Not Modified."""

    status: int  # 200 or 304
    value: T | None  # None when not modified
    etag: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request made, for metrics: its route as a template (`/repos/{owner}/{repo}/releases`, never the real
    names: a metric label), its status (0: no answer) and how long it took."""

    method: str
    route: str
    status: int
    not_modified: bool
    duration: float


MAX_MESSAGE = 300  # characters of the API's message kept


class GitHubError(Exception):
    """Base of the GitHub client's errors."""

    def __init__(self, message: str, *, status: int = 0, retry_at: float | None = None) -> None:
        super().__init__(message[:MAX_MESSAGE])
        self.status = status
        self.retry_at = retry_at  # epoch seconds when a retry may succeed (rate limits), else None

    @property
    def message(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={str(self)!r})"


class GitHubUnavailable(GitHubError):
    """No usable answer after the retries: a 5xx, a failed connection or a timeout."""


class GitHubRateLimited(GitHubError):
    """A rate limit that lasts longer than the client waits (`max_wait`), or one that outlasted its retries."""


class GitHubRefused(GitHubError):
    """A 4xx other than a rate limit: the API's message is kept."""


class GitHubAuthError(GitHubRefused):
    """401 (a bad, expired or revoked credential), or App credentials that cannot be used."""


class GitHubApi(Protocol):
    @property
    def requests(self) -> int:
        """HTTP requests made, retries included."""
        ...

    @property
    def rate_limit(self) -> RateLimitSnapshot | None:
        """From the last answer that carried `x-ratelimit-*` headers."""
        ...

    def hook_deliveries(
        self, hook: HookRef, *, since: float | None = None, per_page: int = 100
    ) -> AsyncIterator[Sequence[HookDelivery]]:
        """The hook's deliveries, newest first, a page at a time; stops after the first page that reaches back
        past `since`."""
        ...

    async def redeliver(self, hook: HookRef, github_delivery_id: int) -> None:
        """Ask GitHub to deliver this attempt's event to the hook again (202 Accepted)."""
        ...

    async def repository(self, full_name: str) -> Mapping[str, Any]: ...

    async def releases(
        self, full_name: str, *, etag: str | None, per_page: int = 30
    ) -> Conditional[list[Mapping[str, Any]]]: ...

    async def aclose(self) -> None: ...
