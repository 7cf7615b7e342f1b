"""GitHub's REST API, as ghingest calls it: `GitHubClient` (gidgethub over httpx), its errors and its records."""

from ghingest.adapters.github._transport import RequestRecord
from ghingest.adapters.github.auth import AppCredentials
from ghingest.adapters.github.client import Conditional, GitHubClient
from ghingest.adapters.github.errors import (
    GitHubAuthError,
    GitHubError,
    GitHubRateLimited,
    GitHubRefused,
    GitHubUnavailable,
)

__all__ = [
    "AppCredentials",
    "Conditional",
    "GitHubAuthError",
    "GitHubClient",
    "GitHubError",
    "GitHubRateLimited",
    "GitHubRefused",
    "GitHubUnavailable",
    "RequestRecord",
]
