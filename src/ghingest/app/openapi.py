"""The OpenAPI document: FastAPI's, plus the webhook route (a bare ASGI callable FastAPI does not see)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ghingest.app.receiver import PATH

_ERROR = {"$ref": "#/components/schemas/ErrorDocument"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


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
            " answers 200 with `duplicate: true` and stores nothing new. Needs no bearer token."
        ),
        "operationId": "receive_webhook",
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
            "400": _error("A required header is missing or malformed, or the payload is not a JSON object."),
            "401": _error("The signature is missing or matches no configured secret."),
            "403": _error(
                "`forbidden_source`: the source allow-list is on and the client (behind trusted proxies) is not in"
                " it; the body was not read."
            ),
            "405": _error("Only POST is allowed."),
            "413": _error("The body exceeds 25 MiB."),
            "415": _error("The content type is neither application/json nor application/x-www-form-urlencoded."),
            "503": {
                **_error(
                    "The store could not commit (`store_unavailable`), or the source allow-list is on and GitHub's"
                    " list of webhook addresses was never loaded (`source_unknown`); nothing was recorded. Retry later."
                ),
                "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
            },
        },
    }
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    from ghingest.app.api_models import Accepted, Duplicate, ErrorDocument

    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    document["paths"] = {PATH: WEBHOOK_PATH_ITEM, **document.get("paths", {})}
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (Accepted, Duplicate, ErrorDocument):
        schemas.setdefault(model.__name__, model.model_json_schema(ref_template="#/components/schemas/{model}"))
    document["components"].setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    app.openapi_schema = document
    return document
