"""What the reconciler and the release tracker ask of GitHub's REST API (`ghingest.adapters.github` answers over
HTTP; tests answer with a fake GitHub server). Errors never carry a token, a JWT, a key or payload text."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ghingest.core.github_hooks import HookDelivery, HookRef

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


class GitHubError(Exception):
    """A request GitHub did not answer as hoped."""

    def __init__(self, message: str, *, status: int = 0, retry_at: float | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status; 0: no answer
        self.retry_at = retry_at  # epoch seconds when a retry may succeed (rate limits)


class GitHubUnavailable(GitHubError):
    """5xx, a network error or a timeout, after the retries."""


class GitHubRateLimited(GitHubError):
    """A rate limit asks for a longer wait than allowed (`retry_at` says until when)."""


class GitHubRefused(GitHubError):
    """Any other 4xx (404, 410, 422, …): asking again will not help."""


class GitHubAuthError(GitHubRefused):
    """401, or credentials that do not work (a bad App key)."""


class GitHubApi(Protocol):
    requests: int  # HTTP requests made, retries included

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
