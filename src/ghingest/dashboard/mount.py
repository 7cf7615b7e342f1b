"""Put the dashboard into the FastAPI application: sign-in gate, pages, live stream, static assets.

Adding a page (e.g. forwarding's destinations): write an
`APIRouter(include_in_schema=False, route_class=PageRoute)` (`ghingest.dashboard.errors`) whose routes take
`CurrentUser` (pages) or `OperatorPost` (state-changing forms, operators only) from `ghingest.dashboard.security`,
render with `renderer_of(request).page(request, "yours.html", context)` (`ghingest.dashboard.templating`) where
`yours.html` extends `base.html` (blocks `title`, `content`; show state-changing controls only when
`principal.operator`), and pass the router and a `NavItem` to `mount_dashboard`.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ghingest.app.auth import OPERATOR_REQUIRED, Gate, TokenAuthenticator
from ghingest.app.credentials import session_secret
from ghingest.app.password_pool import PasswordPool
from ghingest.app.revocations import RevocationCache
from ghingest.app.runtime import Runtime
from ghingest.app.users import UsersFile
from ghingest.core.throttle import SignInThrottle, TokenBuckets
from ghingest.dashboard import live, overview, pages, sign_in
from ghingest.dashboard.errors import install_error_pages
from ghingest.dashboard.notes import NotesRenderer
from ghingest.dashboard.pages import ChartCache
from ghingest.dashboard.security import LoginRequired, OperatorRequired, login_url
from ghingest.dashboard.templating import NavItem, Renderer, renderer_of

NAV: tuple[NavItem, ...] = (
    NavItem("Overview", "/overview", ("/overview",)),
    NavItem("Releases", "/", ("/", "/releases", "/repos")),
    NavItem("Events", "/events", ("/events", "/deliveries")),
)


def build_gate(runtime: Runtime) -> Gate:
    s = runtime.settings
    return Gate(
        tokens=TokenAuthenticator(runtime.api_tokens.values),
        users=UsersFile(s.users_file),
        secret=session_secret(s),
        max_age=s.session_max_age,
        throttle=SignInThrottle(
            users=TokenBuckets(
                burst=s.sign_in_user_burst, interval=s.sign_in_user_interval, max_keys=s.sign_in_tracked_keys
            ),
            clients=TokenBuckets(
                burst=s.sign_in_client_burst, interval=s.sign_in_client_interval, max_keys=s.sign_in_tracked_keys
            ),
        ),
        password_pool=PasswordPool(threads=s.password_hash_threads, queue=s.password_hash_queue),
        revocations=RevocationCache(runtime.backend.sessions, ttl=s.session_revocation_cache),
        sso_header=s.sso_header,
        trusted_proxies=s.trusted_proxies,
        sso_default_role=s.sso_default_role,
        sso_operators=s.sso_operators,
        https=bool(s.public_url and s.public_url.lower().startswith("https://")),
    )


def mount_dashboard(
    app: FastAPI,
    runtime: Runtime,
    *,
    extra_routers: Sequence[APIRouter] = (),
    extra_nav: Sequence[NavItem] = (),
) -> None:
    app.state.gate = build_gate(runtime)
    app.state.dashboard_renderer = Renderer([*NAV, *extra_nav])
    if runtime.settings.live_updates == "poll":
        app.state.dashboard_renderer.env.globals["live_poll_seconds"] = round(runtime.settings.live_poll_interval)
    app.state.dashboard_chart_cache = ChartCache()
    app.state.dashboard_overview_cache = overview.OverviewCache()
    app.state.dashboard_notes = NotesRenderer(budget=runtime.settings.notes_render_budget)
    for router in (sign_in.router, live.router, pages.router, overview.router, *extra_routers):
        app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("ghingest.dashboard", "static")]), name="static")
    install_error_pages(app)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("accept", "").startswith("application/json") or request.method != "GET":
            return JSONResponse({"error": "unauthorized", "detail": "sign in first"}, status_code=401)
        return RedirectResponse(login_url(exc.next_url), status_code=303)

    @app.exception_handler(OperatorRequired)
    async def operator_required(request: Request, _exc: OperatorRequired) -> Response:
        if "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": "forbidden", "detail": OPERATOR_REQUIRED}, status_code=403)
        message = (
            "Operator role required: your role (viewer) may read releases, events and forwarding, but"
            " reprocessing, replaying, retrying, forwarding again and the audit log need the operator role."
            " Ask whoever runs ghingest."
        )
        context = {"title": "Operator role required", "message": message}
        return renderer_of(request).page(request, "error.html", context, status_code=403)
