"""The JSON objects the fake GitHub answers with, shaped as GitHub's REST API documents them ("Repositories",
"Releases", "Webhook deliveries", "Apps"): plain dicts from plain values, with `api` the fake's API URL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"


def iso(moment: float | None) -> str | None:
    """Epoch seconds as GitHub writes times: `2024-05-15T15:19:25Z`."""
    if moment is None:
        return None
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compact(data: Any) -> bytes:
    """JSON as GitHub sends it (payloads, answers): compact, UTF-8."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def error(message: str, *, status: int, documentation_url: str = DOCS, **extra: Any) -> dict[str, Any]:
    """GitHub's error body: `message`, `documentation_url` and, on newer answers, `status` as a string."""
    return {"message": message, "documentation_url": documentation_url, "status": str(status), **extra}


def account(api: str, login: str, ident: int, kind: str) -> dict[str, Any]:
    return {
        "login": login,
        "id": ident,
        "node_id": f"MDQ6VXNlcj{ident}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{ident}?v=4",
        "url": f"{api}/users/{login}",
        "html_url": f"{WEB}/{login}",
        "type": kind,
        "site_admin": False,
    }


def repository(api: str, *, ident: int, owner: dict[str, Any], name: str, private: bool) -> dict[str, Any]:
    full_name = f"{owner['login']}/{name}"
    return {
        "id": ident,
        "node_id": f"MDEwOlJlcG9zaXRvcnk{ident}",
        "name": name,
        "full_name": full_name,
        "owner": owner,
        "private": private,
        "visibility": "private" if private else "public",
        "html_url": f"{WEB}/{full_name}",
        "description": None,
        "fork": False,
        "url": f"{api}/repos/{full_name}",
        "releases_url": f"{api}/repos/{full_name}/releases{{/id}}",
        "hooks_url": f"{api}/repos/{full_name}/hooks",
        "default_branch": "main",
        "archived": False,
        "disabled": False,
        "created_at": "2019-05-15T15:19:25Z",
        "updated_at": "2024-05-15T15:20:41Z",
        "pushed_at": "2024-05-15T15:20:57Z",
    }


def release(
    api: str,
    *,
    full_name: str,
    ident: int,
    tag_name: str,
    name: str | None,
    body: str | None,
    draft: bool,
    prerelease: bool,
    created_at: float,
    published_at: float | None,
    author: dict[str, Any],
) -> dict[str, Any]:
    base = f"{api}/repos/{full_name}"
    return {
        "url": f"{base}/releases/{ident}",
        "assets_url": f"{base}/releases/{ident}/assets",
        "upload_url": f"https://uploads.github.com/repos/{full_name}/releases/{ident}/assets{{?name,label}}",
        "html_url": f"{WEB}/{full_name}/releases/tag/{tag_name}",
        "id": ident,
        "author": author,
        "node_id": f"MDc6UmVsZWFzZT{ident}",
        "tag_name": tag_name,
        "target_commitish": "main",
        "name": name,
        "draft": draft,
        "prerelease": prerelease,
        "immutable": False,
        "created_at": iso(created_at),
        "updated_at": iso(created_at),
        "published_at": None if draft else iso(published_at),
        "assets": [],
        "tarball_url": None if draft else f"{base}/tarball/{tag_name}",
        "zipball_url": None if draft else f"{base}/zipball/{tag_name}",
        "body": body,
    }


def installation(
    api: str, *, ident: int, app_id: int, app_slug: str, account: dict[str, Any], selection: str
) -> dict[str, Any]:
    return {
        "id": ident,
        "account": account,
        "repository_selection": selection,
        "access_tokens_url": f"{api}/app/installations/{ident}/access_tokens",
        "repositories_url": f"{api}/installation/repositories",
        "html_url": f"{WEB}/settings/installations/{ident}",
        "app_id": app_id,
        "app_slug": app_slug,
        "target_id": account["id"],
        "target_type": account["type"],
        "permissions": {"metadata": "read", "contents": "read", "repository_hooks": "write"},
        "events": ["release"],
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "single_file_name": None,
        "suspended_at": None,
    }


def app(api: str, *, ident: int, slug: str, owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ident,
        "slug": slug,
        "node_id": f"MDM6QXBw{ident}",
        "client_id": f"Iv1.{ident:016x}",
        "owner": owner,
        "name": slug,
        "description": "",
        "external_url": f"{WEB}/apps/{slug}",
        "html_url": f"{WEB}/apps/{slug}",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "permissions": {"metadata": "read", "contents": "read"},
        "events": ["release"],
    }
