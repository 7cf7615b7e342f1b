"""GitHub's REST API, as ghingest calls it: `GitHubClient` (gidgethub over httpx), its errors and its records."""

from ghingest.adapters.github.auth import AppCredentials
from ghingest.adapters.github.client import GitHubClient
from ghingest.ports.github_api import (
    Conditional,
    GitHubAuthError,
    GitHubError,
    GitHubRateLimited,
    GitHubRefused,
    GitHubUnavailable,
    RequestRecord,
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
