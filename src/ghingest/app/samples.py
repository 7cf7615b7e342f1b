"""Realistic GitHub webhook payloads, for `ghingest send`, the tests and the benchmarks.

The shapes follow GitHub's documented `release` payload: a release, its repository (with the usual API URLs, which
make a real payload about 8 KB), the organization, the sender and, for GitHub Apps, the installation.
"""

from __future__ import annotations

from typing import Any

API = "https://api.github.com"
WEB = "https://github.com"
PUBLISHED_AT = "2024-05-15T15:20:41Z"

_REPO_URL_TEMPLATES = (
    "forks", "keys{/key_id}", "collaborators{/collaborator}", "teams", "hooks", "issues/events{/number}",
    "events", "assignees{/user}", "branches{/branch}", "tags", "blobs{/sha}", "git/tags{/sha}",
    "git/refs{/sha}", "git/trees{/sha}", "statuses/{sha}", "languages", "stargazers", "contributors",
    "subscribers", "subscription", "commits{/sha}", "git/commits{/sha}", "comments{/number}",
    "issues/comments{/number}", "contents/{+path}", "compare/{base}...{head}", "merges", "{archive_format}{/ref}",
    "downloads", "issues{/number}", "pulls{/number}", "milestones{/number}",
    "notifications{?since,all,participating}", "labels{/name}", "releases{/id}", "deployments",
)  # fmt: skip


def user(login: str, user_id: int) -> dict[str, Any]:
    return {
        "login": login,
        "id": user_id,
        "node_id": f"MDQ6VXNlcj{user_id}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": f"{API}/users/{login}",
        "html_url": f"{WEB}/{login}",
        "followers_url": f"{API}/users/{login}/followers",
        "following_url": f"{API}/users/{login}/following{{/other_user}}",
        "gists_url": f"{API}/users/{login}/gists{{/gist_id}}",
        "starred_url": f"{API}/users/{login}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{API}/users/{login}/subscriptions",
        "organizations_url": f"{API}/users/{login}/orgs",
        "repos_url": f"{API}/users/{login}/repos",
        "events_url": f"{API}/users/{login}/events{{/privacy}}",
        "received_events_url": f"{API}/users/{login}/received_events",
        "type": "User",
        "site_admin": False,
    }


def repository(full_name: str, repo_id: int) -> dict[str, Any]:
    owner_login, _, name = full_name.partition("/")
    base = f"{API}/repos/{full_name}"
    repo: dict[str, Any] = {
        "id": repo_id,
        "node_id": f"MDEwOlJlcG9zaXRvcnk{repo_id}",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": {**user(owner_login, repo_id + 1), "type": "Organization"},
        "html_url": f"{WEB}/{full_name}",
        "description": f"The {name} project",
        "fork": False,
        "url": base,
    }
    for template in _REPO_URL_TEMPLATES:
        key = template.split("/")[0].split("{")[0].replace("-", "_") or "archive"
        repo[f"{key}_url"] = f"{base}/{template}"
    repo.update(
        {
            "created_at": "2019-05-15T15:19:25Z",
            "updated_at": "2024-05-15T15:20:41Z",
            "pushed_at": "2024-05-15T15:20:57Z",
            "git_url": f"git://github.com/{full_name}.git",
            "ssh_url": f"git@github.com:{full_name}.git",
            "clone_url": f"{WEB}/{full_name}.git",
            "svn_url": f"{WEB}/{full_name}",
            "homepage": None,
            "size": 1024,
            "stargazers_count": 42,
            "watchers_count": 42,
            "language": "Python",
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": True,
            "has_pages": False,
            "forks_count": 3,
            "archived": False,
            "disabled": False,
            "open_issues_count": 7,
            "license": None,
            "topics": ["webhooks", "releases"],
            "visibility": "public",
            "forks": 3,
            "open_issues": 7,
            "watchers": 42,
            "default_branch": "main",
        }
    )
    return repo


def release_payload(
    *,
    action: str = "published",
    release_id: int = 123456789,
    tag: str = "v1.0.0",
    name: str | None = None,
    body: str | None = None,
    repository_name: str = "octo-org/octo-repo",
    author: str = "octocat",
    draft: bool = False,
    prerelease: bool = False,
    created_at: str = "2024-05-15T15:19:25Z",
    published_at: str | None = PUBLISHED_AT,
    installation_id: int | None = 4242,
) -> dict[str, Any]:
    """A `release` webhook payload as GitHub sends it."""
    base = f"{API}/repos/{repository_name}"
    org_login = repository_name.partition("/")[0]
    payload: dict[str, Any] = {
        "action": action,
        "release": {
            "url": f"{base}/releases/{release_id}",
            "assets_url": f"{base}/releases/{release_id}/assets",
            "upload_url": f"https://uploads.github.com/repos/{repository_name}/releases/{release_id}/assets{{?name,label}}",
            "html_url": f"{WEB}/{repository_name}/releases/tag/{tag}",
            "id": release_id,
            "author": user(author, 583231),
            "node_id": f"MDc6UmVsZWFzZT{release_id}",
            "tag_name": tag,
            "target_commitish": "main",
            "name": name if name is not None else f"Release {tag}",
            "draft": draft,
            "prerelease": prerelease,
            "created_at": created_at,
            "published_at": None if draft else published_at,
            "assets": [],
            "tarball_url": f"{base}/tarball/{tag}",
            "zipball_url": f"{base}/zipball/{tag}",
            "body": body if body is not None else f"## What's changed\n\n* Everything in {tag}.\n",
        },
        "repository": repository(repository_name, 186853002),
        "organization": {
            "login": org_login,
            "id": 6811672,
            "node_id": "MDEyOk9yZ2FuaXphdGlvbjY4MTE2NzI=",
            "url": f"{API}/orgs/{org_login}",
            "repos_url": f"{API}/orgs/{org_login}/repos",
            "events_url": f"{API}/orgs/{org_login}/events",
            "hooks_url": f"{API}/orgs/{org_login}/hooks",
            "issues_url": f"{API}/orgs/{org_login}/issues",
            "members_url": f"{API}/orgs/{org_login}/members{{/member}}",
            "public_members_url": f"{API}/orgs/{org_login}/public_members{{/member}}",
            "avatar_url": "https://avatars.githubusercontent.com/u/6811672?v=4",
            "description": "",
        },
        "sender": user(author, 583231),
    }
    if installation_id is not None:
        payload["installation"] = {
            "id": installation_id,
            "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==",
        }
    return payload
