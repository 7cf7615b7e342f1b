"""The OpenAPI document (ADR 0027): FastAPI's, made accurate for people and clients.

What FastAPI does not know and this module adds, so that a route added later is documented by the same rules:

- How an operation is authenticated, read off its own dependencies (`DocumentedRoute`): `require_reader` is a
  bearer token or a dashboard session, with `require_bearer` a bearer token only, with `require_operator` also the
  operator role (403); a route with none needs nothing (`security: []`). 401/403/413 are documented accordingly.
- The real error document: every validation error answers 400 `ErrorDocument` (`asgi.create_api`'s handler), so
  FastAPI's 422 and its `HTTPValidationError` schema are replaced by it everywhere.
- Readable operation ids (`operation_id`: the endpoint's name in camelCase, `list_releases` → `listReleases`), tag
  descriptions, and the webhook route (a bare ASGI callable FastAPI does not see).

Parameters, their descriptions, formats (`format: date-time`), enums and examples come from the endpoints' typed
`Annotated[..., Query(...)]` parameters and the pydantic models, as FastAPI generates them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from ghingest.app.auth import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    require_bearer,
    require_operator,
    require_reader,
)
from ghingest.app.receiver import PATH

BEARER = "bearer"
SESSION = "session"
_ERROR = {"$ref": "#/components/schemas/ErrorDocument"}

DESCRIPTION = f"""\
Receive, verify and durably record GitHub webhook deliveries; read releases, events and deliveries; forward events
and replay them; see what reconciliation with GitHub found.

**Authentication.** Every `/api` operation takes `Authorization: Bearer <token>` with an API token
(`GHINGEST_API_TOKENS`, or the one ghingest generated in `data/api-token`). The reads also take a dashboard session
(the `{SESSION_COOKIE}` cookie of a browser signed in at `/login`; a write from a session needs its `{CSRF_HEADER}`).
Operations that change state need the operator role and a bearer token. On this page, choose **Authorize** and paste
a token: it stays in this tab's memory. The webhook is authenticated by its HMAC signature; health, readiness and
metrics need nothing.

**Errors** are JSON `{{"error": code, "detail": text}}` (`ErrorDocument`): 400 `invalid_request` (a parameter or the
body does not validate) or `invalid_cursor`, 401 `unauthorized`, 403 `forbidden`, 404 `not_found`, 413
`payload_too_large`.

**Times** are ISO-8601 in UTC with a trailing `Z` (`2024-05-01T12:00:00.000Z`); a time filter takes any ISO-8601
time (no zone means UTC). **Pages** are newest first: pass a page's `next_cursor` back as `cursor`.
"""

TAGS: list[dict[str, str]] = [
    {"name": "releases and events", "description": "Releases, events and recorded deliveries; reprocessing."},
    {"name": "forwarding", "description": "Forward destinations, each delivery's forwards and attempts, replays."},
    {"name": "GitHub sync", "description": "Reconciliation with GitHub's delivery log; repositories polled."},
    {"name": "rejected requests", "description": "Webhook requests ghingest refused (401, 400, 403, 413, 415)."},
    {"name": "audit log", "description": "Who started which operator action or signed in, when, and what came of it."},
    {"name": "webhooks", "description": "GitHub's webhook deliveries (authenticated by signature)."},
    {"name": "operations", "description": "Liveness, readiness and metrics (no authentication)."},
]

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token: one of `GHINGEST_API_TOKENS`, or the generated `data/api-token`.",
    },
    SESSION: {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The dashboard's session (sign in at `/login`): a signed-in browser sends it by itself, so"
        " Try it out works for the reads without a token. Not for scripts, and a write needs the session's"
        f" `{CSRF_HEADER}` header.",
    },
}

ERROR_EXAMPLES: dict[str, dict[str, str]] = {
    "400": {"error": "invalid_request", "detail": "limit: Input should be less than or equal to 200"},
    "401": {"error": "unauthorized", "detail": "a valid 'Authorization: Bearer <token>' header is required"},
    "403": {"error": "forbidden", "detail": "operator role required"},
    "404": {"error": "not_found", "detail": "no release 1001"},
    "413": {"error": "payload_too_large", "detail": "the request body exceeds 65536 bytes"},
    "503": {"error": "not_ready", "detail": "the store does not answer (OperationalError)"},
}


def error_response(description: str) -> dict[str, Any]:
    """An error answer with the `ErrorDocument` schema."""
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def operation_id(route: APIRoute) -> str:
    """The endpoint's name in camelCase: `list_releases` → `listReleases` (FastAPI's `generate_unique_id_function`)."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def authentication_of(route: APIRoute) -> dict[str, Any]:
    """The `security` and the 401/403/413 answers of a route's operation, from its dependencies (and the 503 of
    every route that reads or writes the store on a principal's behalf)."""
    calls = set(_calls(route.dependant))
    if require_reader not in calls:
        return {"security": []}
    bearer_only = require_bearer in calls
    security: list[dict[str, list[str]]] = [{BEARER: []}] if bearer_only else [{BEARER: []}, {SESSION: []}]
    writes = bool((route.methods or set()) - SAFE_METHODS)
    responses = {
        "401": error_response("No valid bearer token" + ("." if bearer_only else " and no dashboard session."))
    }
    refusals = []
    if require_operator in calls:
        refusals.append("the principal lacks the operator role")
    if writes and not bearer_only:
        refusals.append(f"a dashboard session sent no (or a wrong) `{CSRF_HEADER}` header")
    if refusals:
        responses["403"] = error_response("Forbidden: " + "; or ".join(refusals) + ".")
    unavailable = error_response("The store cannot answer now; try again after `Retry-After` seconds.")
    unavailable["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
    unavailable["content"]["application/json"]["example"] = {
        "error": "service_unavailable",
        "detail": "the store is unavailable; try again shortly",
    }
    responses["503"] = unavailable
    if writes:
        responses["413"] = error_response(
            "The body is over the API's limit (`GHINGEST_HTTP_MAX_FORM_BYTES`, 64 KiB by default); it was not read."
        )
    return {"security": security, "responses": responses}


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and key in merged else value
    return merged


class DocumentedRoute(APIRoute):
    """The route class of every router in the OpenAPI document: its operation says how it is authenticated
    (`authentication_of`), whatever its router; an `openapi_extra` of its own wins."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.openapi_extra = _merged(authentication_of(self), self.openapi_extra or {})


def _header(name: str, description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


WEBHOOK_PATH_ITEM: dict[str, Any] = {
    "post": {
        "tags": ["webhooks"],
        "summary": "Receive a GitHub webhook delivery",
        "description": (
            "Verifies `X-Hub-Signature-256` (HMAC-SHA256 of the exact body with any configured secret), records the"
            " delivery durably and answers 202 only after the record is committed. A delivery id already recorded"
            " answers 200 with `duplicate: true` and stores nothing new. Needs no bearer token: the signature is the"
            " authentication."
        ),
        "operationId": "receiveWebhook",
        "security": [],
        "parameters": [
            _header("X-GitHub-Event", "The event name, e.g. `release`."),
            _header("X-GitHub-Delivery", "The delivery's unique id (GitHub keeps it on redelivery)."),
            _header("X-Hub-Signature-256", "`sha256=` and the hex HMAC-SHA256 of the body."),
            _header("X-Hub-Signature", "Legacy SHA-1 signature; accepted only when enabled.", required=False),
            _header("X-GitHub-Hook-ID", "The webhook's id.", required=False),
            _header("X-GitHub-Hook-Installation-Target-ID", "The hook's target id.", required=False),
            _header(
                "X-GitHub-Hook-Installation-Target-Type",
                "repository, organization or integration.",
                required=False,
            ),
        ],
        "requestBody": {
            "required": True,
            "description": "At most 25 MiB.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"payload": {"type": "string"}},
                        "required": ["payload"],
                    }
                },
            },
        },
        "responses": {
            "202": {
                "description": "Recorded durably; processing follows asynchronously.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
            },
            "200": {
                "description": "This delivery id was already recorded; nothing new was stored.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Duplicate"}}},
            },
            "400": error_response("A required header is missing or malformed, or the payload is not a JSON object."),
            "401": error_response("The signature is missing or matches no configured secret."),
            "403": error_response(
                "`forbidden_source`: the source allow-list is on and the client (behind trusted proxies) is not in"
                " it; the body was not read.",
            ),
            "405": error_response("Only POST is allowed."),
            "413": error_response("The body exceeds 25 MiB."),
            "415": error_response(
                "The content type is neither application/json nor application/x-www-form-urlencoded."
            ),
            "503": {
                **error_response(
                    "The store could not commit (`store_unavailable`), or the source allow-list is on and GitHub's"
                    " list of webhook addresses was never loaded (`source_unknown`); nothing was recorded. Retry"
                    " later.",
                ),
                "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
            },
        },
    }
}

INVALID_REQUEST = "`invalid_request`: a parameter (or the body) does not validate."
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _errors_as_answered(paths: dict[str, Any]) -> None:
    """FastAPI documents a 422 for every operation with parameters; the app answers 400 `ErrorDocument`. Every
    `ErrorDocument` answer gets its status's example."""
    for item in paths.values():
        for operation in item.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = error_response(INVALID_REQUEST)
            for status, response in responses.items():
                media = response.get("content", {}).get("application/json", {})
                if media.get("schema") == _ERROR and status in ERROR_EXAMPLES:
                    media.setdefault("example", ERROR_EXAMPLES[status])


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    from ghingest.app.api_models import EXAMPLES, Accepted, Duplicate, ErrorDocument

    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=TAGS
    )
    _errors_as_answered(document.get("paths", {}))
    document["paths"] = {PATH: WEBHOOK_PATH_ITEM, **document.get("paths", {})}
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    for model in (Accepted, Duplicate, ErrorDocument):
        schemas.setdefault(model.__name__, model.model_json_schema(ref_template="#/components/schemas/{model}"))
    for name, examples in EXAMPLES.items():
        if name in schemas:
            schemas[name]["examples"] = examples
    document["components"]["securitySchemes"] = SECURITY_SCHEMES
    app.openapi_schema = document
    return document
