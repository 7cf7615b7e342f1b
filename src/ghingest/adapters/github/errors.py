"""What a request to GitHub's REST API can come to besides an answer. Messages name the request (method and path)
and keep the API's own message, bounded; never a token, a JWT, a key or a payload.

GitHubError                     status: the HTTP status, 0 when there was no answer (or no request was sent)
├── GitHubUnavailable           5xx, a failed connection or a timeout, after the retries: try again later
├── GitHubRateLimited           a limit asks for a longer wait than the client may make: `retry_at` says when
└── GitHubRefused               any other 4xx (404, 410, 422, 400 …): sending it again will not help
    └── GitHubAuthError         401, or App credentials that do not work (a bad key, no installation)
"""

from __future__ import annotations

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
