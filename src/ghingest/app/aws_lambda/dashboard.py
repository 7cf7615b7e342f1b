"""Every route but the webhook's on API Gateway's HTTP API: the read API and the dashboard, the same FastAPI
application as every profile, through Mangum, with the same sign-in.

API Gateway returns a Lambda's response whole, so the live stream cannot stay open: this function always runs with
`GHINGEST_LIVE_UPDATES=poll`, each `/live` request answers what changed since the page's cursor at once, and the
page says that it checks every few seconds (`GHINGEST_LIVE_POLL_INTERVAL`) instead of claiming to stream.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ghingest.app.aws_lambda.container import current
from ghingest.app.runtime import Runtime


def _application(runtime: Runtime) -> Any:
    from mangum import Mangum

    from ghingest.app.asgi import create_api

    polling = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update={"live_updates": "poll"}))
    app = create_api(polling, manage_runtime=False, with_dashboard=True, with_read_api=True, receives_webhooks=False)
    return Mangum(app, lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response: dict[str, Any] = current().built("dashboard", _application)(event, context)
    return response
