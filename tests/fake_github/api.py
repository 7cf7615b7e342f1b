"""The fake GitHub's answers: routing, the credential, the primary rate limit, conditional GETs, and each route.

Every answer carries `x-ratelimit-*` for the request's credential; a GET's 200 carries a strong `ETag` over its
body, and an `If-None-Match` that matches it is answered 304, at no rate-limit cost. Order of judgement, as on
GitHub: an injected fault; the credential (401); the primary limit (403); the route (404, 422 …). Routes run under
the state's lock, and never wait.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import http
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ghingest.core.github_hooks import HookKind
from tests.fake_github import fixtures
from tests.fake_github.state import Hook, Identity, Installation, Repository, Seen

if TYPE_CHECKING:
    from tests.fake_github.server import FakeGitHub

RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
BAD_JWT = "A JSON web token could not be decoded"
NOT_FOUND = "Not Found"
JSON = "application/json; charset=utf-8"


@dataclass
class Reply:
    status: int
    data: Any = None  # JSON; None: no body
    headers: dict[str, str] = field(default_factory=dict)
    after: Callable[[], None] | None = None  # run on the server's loop once judged (a redelivery's start)


def _refusal(status: int, message: str | None = None, **extra: Any) -> Reply:
    text = message or http.HTTPStatus(status).phrase
    return Reply(status, fixtures.error(text, status=status, **extra))


async def answer(fake: FakeGitHub, request: Request) -> Response:
    """Answer one request: a fault, a refusal of the credential or of the limit, or the route's answer."""
    method, path = request.method, request.url.path
    if fake.api_prefix:
        path = path.removeprefix(fake.api_prefix) if path.startswith(fake.api_prefix + "/") else "/-" + path
    found = _match(method, path)
    route = found[0] if found else path
    state = fake.state
    with state.lock:
        state.counters.requests += 1
        state.counters.by_route[f"{method} {route}"] += 1
        headers = {k.lower(): v for k, v in request.headers.items()}
        state.seen.append(Seen(method, route, path, request.url.query, headers))
        fault = state.take_fault(method, path)
        identity = state.identify(request.headers.get("authorization"))
        if fault is not None:
            state.counters.faults += 1
    if fault is not None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        with state.lock:
            extra = state.window(identity.bucket).headers()
        extra.update(fault.headers)
        if fault.retry_after is not None:
            extra["retry-after"] = str(int(fault.retry_after))
        return _response(Reply(fault.status, fixtures.error(fault.message, status=fault.status), extra))
    with state.lock:
        reply = _judge(fake, request, identity, found, path)
    if reply.after is not None:
        reply.after()
    return _response(reply)


def _judge(
    fake: FakeGitHub, request: Request, identity: Identity, found: tuple[str, Handler, dict[str, str]] | None, path: str
) -> Reply:
    state = fake.state
    if identity.kind == "invalid":
        state.counters.unauthorized += 1
        reply = _refusal(401, BAD_JWT if identity.jwt or path.startswith("/app") else "Bad credentials")
        reply.headers.update(state.window("anonymous").headers())
        return reply
    window = state.window(identity.bucket)
    route = found[0] if found else ""
    if window.remaining <= 0 and route != "/rate_limit":
        state.counters.rate_limited += 1
        reply = _refusal(403, f"API rate limit exceeded for {_who(identity)}.", documentation_url=RATE_DOCS)
        reply.headers.update(window.headers())
        return reply
    if found is None:
        reply = _refusal(404, NOT_FOUND)
    else:
        _route, handler, params = found
        reply = handler(fake, request, identity, params)
    if request.method == "GET" and reply.status == 200:
        tag = '"' + hashlib.sha256(fixtures.compact(reply.data)).hexdigest()[:40] + '"'
        reply.headers["etag"] = tag
        if _matches(request.headers.get("if-none-match"), tag):
            reply = Reply(304, None, {"etag": tag})
    if reply.status == 304:
        state.counters.not_modified += 1
    elif route != "/rate_limit":
        window.spend()
        state.counters.costly += 1
    reply.headers.update(window.headers())
    return reply


# --- routes (called under the state's lock) -----------------------------------------------------------------------


def _readable(fake: FakeGitHub, identity: Identity, owner: str, repo: str) -> Repository | Reply:
    repository = fake.state.repository(f"{owner}/{repo}")
    if repository is None:
        return _refusal(404, NOT_FOUND)
    if identity.kind == "app":
        return _refusal(403, "Resource not accessible by integration")
    if repository.private and not _has_access(identity, repository):
        return _refusal(404, NOT_FOUND)
    return repository


def _has_access(identity: Identity, repository: Repository) -> bool:
    if identity.kind == "token":
        return True
    return identity.installation is not None and identity.installation.covers(repository)


def get_repository(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    repo = _readable(fake, identity, params["owner"], params["repo"])
    if isinstance(repo, Reply):
        return repo
    owner = fixtures.account(fake.api_url, repo.owner.login, repo.owner.id, repo.owner.type)
    return Reply(
        200, fixtures.repository(fake.api_url, ident=repo.id, owner=owner, name=repo.name, private=repo.private)
    )


def list_releases(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    repo = _readable(fake, identity, params["owner"], params["repo"])
    if isinstance(repo, Reply):
        return repo
    per_page = _int(request.query_params.get("per_page"), 30, 1, 100)
    page = _int(request.query_params.get("page"), 1, 1, 10**6)
    items = repo.listed_releases(drafts=_has_access(identity, repo))
    shown = items[(page - 1) * per_page : page * per_page]
    headers = {}
    if page * per_page < len(items):
        base = f"{fake.api_url}/repos/{repo.full_name}/releases"
        headers["link"] = f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"'
    return Reply(200, copy.deepcopy(shown), headers)


def repo_installation(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    if identity.app is None:
        return _refusal(401, BAD_JWT)
    repo = fake.state.repository(f"{params['owner']}/{params['repo']}")
    installation = fake.state.installation_of(identity.app, repo.owner) if repo is not None else None
    if repo is None or installation is None or not installation.covers(repo):
        return _refusal(404, NOT_FOUND)
    return Reply(200, _installation(fake, installation))


def org_installation(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    if identity.app is None:
        return _refusal(401, BAD_JWT)
    account = fake.state.accounts.get(params["org"].lower())
    if account is None or account.type != "Organization":
        return _refusal(404, NOT_FOUND)
    installation = fake.state.installation_of(identity.app, account)
    if installation is None:
        return _refusal(404, NOT_FOUND)
    return Reply(200, _installation(fake, installation))


def access_token(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    if identity.app is None:
        return _refusal(401, BAD_JWT)
    installation = fake.state.installations.get(_int(params["installation_id"], 0, 0, 2**63))
    if installation is None or installation.app is not identity.app:
        return _refusal(404, NOT_FOUND)
    token, expires_at = fake.state.issue_token(installation, fake.token_ttl)
    return Reply(201, {
        "token": token, "expires_at": fixtures.iso(expires_at),
        "permissions": {"metadata": "read", "contents": "read", "repository_hooks": "write"},
        "repository_selection": "all" if installation.repositories is None else "selected",
    })  # fmt: skip


def get_app(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    if identity.app is None:
        return _refusal(401, BAD_JWT)
    app = identity.app
    owner = fixtures.account(fake.api_url, app.owner.login, app.owner.id, app.owner.type)
    return Reply(200, fixtures.app(fake.api_url, ident=app.id, slug=app.slug, owner=owner))


def rate_limit(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    window = fake.state.window(identity.bucket)
    core = {"limit": window.limit, "remaining": window.remaining, "reset": int(window.reset), "used": window.used}
    return Reply(200, {"resources": {"core": {**core, "resource": "core"}}, "rate": {**core, "resource": "core"}})


def _installation(fake: FakeGitHub, installation: Installation) -> dict[str, Any]:
    account = installation.account
    return fixtures.installation(
        fake.api_url, ident=installation.id, app_id=installation.app.id, app_slug=installation.app.slug,
        account=fixtures.account(fake.api_url, account.login, account.id, account.type),
        selection="all" if installation.repositories is None else "selected",
    )  # fmt: skip


def _hook_of(fake: FakeGitHub, identity: Identity, params: dict[str, str]) -> Hook | Reply:
    """The hook a deliveries route names, if this credential may see it."""
    if "owner" not in params and "org" not in params:  # the App's own hook: its JWT only
        if identity.app is None:
            return _refusal(401, BAD_JWT)
        return identity.app.hook or _refusal(404, NOT_FOUND)
    if identity.kind == "app":
        return _refusal(403, "Resource not accessible by integration")
    hook_id = _int(params["hook_id"], 0, 0, 2**63)
    if "owner" in params:
        repo = fake.state.repository(f"{params['owner']}/{params['repo']}")
        hook = fake.state.hooks.get((HookKind.REPOSITORY, hook_id))
        if repo is None or hook is None or hook.repository is not repo:
            return _refusal(404, NOT_FOUND)
        allowed = identity.kind == "token" or (identity.installation is not None and identity.installation.covers(repo))
    else:
        account = fake.state.accounts.get(params["org"].lower())
        hook = fake.state.hooks.get((HookKind.ORGANIZATION, hook_id))
        if account is None or hook is None or hook.org is not account:
            return _refusal(404, NOT_FOUND)
        allowed = identity.kind == "token" or (
            identity.installation is not None and identity.installation.account is account
        )
    return hook if allowed else _refusal(404, NOT_FOUND)


def list_deliveries(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    hook = _hook_of(fake, identity, params)
    if isinstance(hook, Reply):
        return hook
    per_page = _int(request.query_params.get("per_page"), 30, 1, 100)
    items, cursor = hook.page(request.query_params.get("cursor"), per_page)
    headers = {}
    if cursor is not None:
        base = f"{fake.url}{request.url.path}"
        headers["link"] = f'<{base}?{urlencode({"per_page": per_page, "cursor": cursor})}>; rel="next"'
    return Reply(200, [d.item() for d in items], headers)


def get_delivery(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    hook = _hook_of(fake, identity, params)
    if isinstance(hook, Reply):
        return hook
    delivery = hook.get(_int(params["delivery_id"], 0, 0, 2**63))
    if delivery is None:
        return _refusal(404, NOT_FOUND)
    body: Any = json.loads(delivery.body) if delivery.body is not None else None
    return Reply(200, {
        **delivery.item(), "url": hook.url,
        "request": {"headers": delivery.request_headers, "payload": body},
        "response": {"headers": delivery.response_headers, "payload": delivery.response_body},
    })  # fmt: skip


def redeliver(fake: FakeGitHub, request: Request, identity: Identity, params: dict[str, str]) -> Reply:
    hook = _hook_of(fake, identity, params)
    if isinstance(hook, Reply):
        return hook
    delivery = hook.get(_int(params["delivery_id"], 0, 0, 2**63))
    if delivery is None:
        return _refusal(404, NOT_FOUND)
    if fake.clock.now() - delivery.delivered_at > fake.redelivery_window:
        return _refusal(422, "Validation Failed", errors=[
            {"resource": "HookDelivery", "code": "custom", "message": "This delivery is too old to redeliver"}
        ])  # fmt: skip
    return Reply(202, {}, after=fake.accept_redelivery(hook, delivery))


Handler = Callable[["FakeGitHub", Request, Identity, dict[str, str]], Reply]

_DELIVERY_ROUTES: list[tuple[str, str, Handler]] = []
for _base in ("/repos/{owner}/{repo}/hooks/{hook_id}", "/orgs/{org}/hooks/{hook_id}", "/app/hook"):
    _DELIVERY_ROUTES += [
        ("GET", _base + "/deliveries", list_deliveries),
        ("GET", _base + "/deliveries/{delivery_id}", get_delivery),
        ("POST", _base + "/deliveries/{delivery_id}/attempts", redeliver),
    ]
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/rate_limit", rate_limit),
    ("GET", "/app", get_app),
    ("GET", "/repos/{owner}/{repo}", get_repository),
    ("GET", "/repos/{owner}/{repo}/releases", list_releases),
    ("GET", "/repos/{owner}/{repo}/installation", repo_installation),
    ("GET", "/orgs/{org}/installation", org_installation),
    ("POST", "/app/installations/{installation_id}/access_tokens", access_token),
    *_DELIVERY_ROUTES,
]
_COMPILED = [
    (method, route, re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route) + "/?"), handler)
    for method, route, handler in ROUTES
]


def _match(method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
    for verb, route, pattern, handler in _COMPILED:
        if verb == method and (m := pattern.fullmatch(path)):
            return route, handler, m.groupdict()
    return None


def _response(reply: Reply) -> Response:
    if reply.status == 304 or reply.data is None:
        return Response(status_code=reply.status, headers=reply.headers)
    return Response(fixtures.compact(reply.data), status_code=reply.status, headers=reply.headers, media_type=JSON)


def _matches(if_none_match: str | None, tag: str) -> bool:
    if if_none_match is None:
        return False
    given = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in given or tag in given


def _int(value: str | None, default: int, low: int, high: int) -> int:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
        return default
    return max(low, min(high, int(value)))


def _who(identity: Identity) -> str:
    if identity.installation is not None:
        return f"installation ID {identity.installation.id}"
    if identity.app is not None:
        return f"integration ID {identity.app.id}"
    return "user ID 1" if identity.kind == "token" else "127.0.0.1"
