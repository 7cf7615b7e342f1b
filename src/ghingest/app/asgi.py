"""The ASGI application: the bare webhook receiver in front, FastAPI (read API, health, metrics) behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

import ghingest
from ghingest.app.api import api, health
from ghingest.app.api_docs import mount_api_docs
from ghingest.app.audit_api import audit_api
from ghingest.app.auth import TokenAuthenticator
from ghingest.app.destinations import UnknownDestination
from ghingest.app.forward_api import forwarding
from ghingest.app.openapi import DESCRIPTION, build_openapi, operation_id
from ghingest.app.proxies import ProxyHeadersMiddleware, TrustedProxies
from ghingest.app.receiver import PATH, RETRY_AFTER_SECONDS
from ghingest.app.rejections_api import rejections_api
from ghingest.app.request_guard import RequestGuard, error_code
from ghingest.app.runtime import Runtime
from ghingest.app.sync_api import sync
from ghingest.core.errors import StoreUnavailable
from ghingest.core.pagination import InvalidCursor


def create_api(
    runtime: Runtime,
    *,
    manage_runtime: bool = True,
    with_dashboard: bool = True,
    with_read_api: bool = True,
    receives_webhooks: bool = False,
) -> FastAPI:
    """Health and metrics; with `with_read_api`, the read and forwarding API and its page `/docs` (and with
    `with_dashboard`, the dashboard). Every request passes the `RequestGuard` (body cap, authentication before an
    `/api` body) first. `/readyz` checks what this process needs: the store, and the inbox when it
    `receives_webhooks` (or runs the worker)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            gate = getattr(_app.state, "gate", None)
            if gate is not None:
                gate.password_pool.close()
            if manage_runtime:
                await runtime.stop()

    app = FastAPI(
        title="ghingest",
        version=ghingest.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN: ours (`api_docs`) serves it from the package
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.runtime = runtime
    app.state.readiness = {"intake": receives_webhooks or runtime.run_worker}
    app.state.authenticator = TokenAuthenticator(runtime.api_tokens.values)
    app.add_middleware(RequestGuard, max_body_bytes=runtime.settings.http_max_form_bytes, metrics=runtime.metrics)
    # Outermost (added last): the real TCP peer, kept for the SSO check before anything authenticates; the client
    # behind a trusted proxy in `request.client`.
    app.add_middleware(ProxyHeadersMiddleware, proxies=TrustedProxies(runtime.settings.trusted_proxies))
    app.include_router(health)
    if with_read_api:
        app.include_router(api)
        app.include_router(forwarding)
        app.include_router(sync)
        app.include_router(rejections_api)
        app.include_router(audit_api)
        mount_api_docs(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": error_code(exc.status_code), "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'][1:]) or 'request'}: {error['msg']}" for error in exc.errors()
        )
        return JSONResponse({"error": "invalid_request", "detail": problems}, status_code=400)

    @app.exception_handler(InvalidCursor)
    async def invalid_cursor(_request: Request, exc: InvalidCursor) -> JSONResponse:
        return JSONResponse({"error": "invalid_cursor", "detail": str(exc)}, status_code=400)

    async def as_http_error(request: Request, error: StarletteHTTPException) -> Response:
        """`error` as the HTTP error handler in force answers it (JSON, or the dashboard's page for a browser)."""
        answer = app.exception_handlers[StarletteHTTPException](request, error)
        return answer if isinstance(answer, Response) else await answer

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, _exc: StoreUnavailable) -> Response:
        # A read or an action while the store cannot answer: 503 with Retry-After, never an unhandled 500.
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return await as_http_error(
            request, StarletteHTTPException(503, detail="the store is unavailable; try again shortly", headers=headers)
        )

    @app.exception_handler(UnknownDestination)
    async def unknown_destination(request: Request, exc: UnknownDestination) -> Response:
        # Pausing, resuming or testing a destination by a name no route or forward knows (API, dashboard alike).
        return await as_http_error(request, StarletteHTTPException(404, detail=str(exc)))

    # After the JSON error handlers: the dashboard answers a browser's errors with pages in front of them.
    if with_read_api and with_dashboard:
        from ghingest.dashboard import audit as audit_pages
        from ghingest.dashboard import forwarding as forwarding_pages
        from ghingest.dashboard import github as github_pages
        from ghingest.dashboard import rejected as rejected_pages
        from ghingest.dashboard.mount import mount_dashboard

        mount_dashboard(
            app,
            runtime,
            extra_routers=[forwarding_pages.router, github_pages.router, rejected_pages.router, audit_pages.router],
            extra_nav=[forwarding_pages.NAV, github_pages.NAV, rejected_pages.NAV, audit_pages.NAV],
        )

    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app


class Application:
    """Dispatches `POST /webhooks/github` to the bare receiver before any framework code runs. Without `read_side`
    (`ghingest receiver`), only health and metrics are served besides it: no read API, no dashboard."""

    def __init__(self, runtime: Runtime, *, manage_runtime: bool = True, read_side: bool = True) -> None:
        self.runtime = runtime
        self.api = create_api(
            runtime,
            manage_runtime=manage_runtime,
            with_dashboard=read_side,
            with_read_api=read_side,
            receives_webhooks=True,
        )
        receiver = runtime.receiver(allowlist=True)
        # The allow-list judges, and the rejected-requests log records, the client behind a trusted proxy, resolved
        # as for every other route (the receiver is dispatched before the API's middleware); with neither a list
        # nor a trusted proxy, the route sees the TCP peer and nothing more.
        proxies = TrustedProxies(runtime.settings.trusted_proxies)
        self.receiver: ASGIApp = (
            receiver
            if runtime.hook_allowlist is None and not proxies
            else ProxyHeadersMiddleware(receiver, proxies=proxies)
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == PATH:
            await self.receiver(scope, receive, send)
        else:
            await self.api(scope, receive, send)
