"""Print the OpenAPI document as YAML (`make openapi` writes it to docs/openapi.yaml)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import yaml


def current_document() -> dict[str, Any]:
    """The document the application serves at /openapi.json, built without starting anything."""
    from ghingest.app.asgi import Application
    from ghingest.app.runtime import Runtime
    from ghingest.app.settings import load_settings

    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(
            database_url=f"sqlite:///{Path(folder) / 'openapi.db'}",
            data_dir=Path(folder),
            webhook_secrets="openapi-export-secret",
            api_tokens="openapi-export-token",
        )
        application = Application(Runtime.build(settings))
        document: dict[str, Any] = application.api.openapi()
        asyncio.run(application.runtime.backend.resources.close())
        return document


def main() -> None:
    # Through JSON, as it is served: a part the document shares (an example, say) is written out again, no anchor.
    document = orjson.loads(orjson.dumps(current_document()))
    yaml.safe_dump(document, sys.stdout, sort_keys=False, allow_unicode=True, width=120)


if __name__ == "__main__":
    main()
