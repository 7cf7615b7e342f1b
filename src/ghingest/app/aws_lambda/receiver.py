"""`POST /webhooks/github` on API Gateway's HTTP API: the same bare ASGI receiver as every profile, through Mangum
(payload format 2.0: the body base64-decoded when API Gateway encoded it, the headers as sent).

Nothing else is imported at a cold start: no framework, no dashboard. The receiver answers 202 only after the
delivery item is committed in DynamoDB and its notice was accepted by SNS (`AwsInbox.append`); a failure of either
is a 503 with `Retry-After`, and the recorded-but-unsent delivery is sent on by GitHub's redelivery or the sweeper.
A refused request is written to the rejected-requests log before the invocation returns (no task runs between
invocations): one conditional `UpdateItem` of its bucket, so a flood adds to counts rather than items; a valid
delivery writes nothing there.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson

from ghingest.app.aws_lambda.container import current
from ghingest.app.aws_lambda.observe import METRICS, count, response_class
from ghingest.app.logs import get_logger
from ghingest.app.receiver import PATH, RETRY_AFTER_SECONDS, respond_json
from ghingest.app.runtime import Runtime
from ghingest.app.settings import ConfigError


def not_configured() -> dict[str, Any]:
    """What GitHub gets while the function cannot verify anything (no webhook secret in the secret yet)."""
    body = orjson.dumps({"error": "not_configured", "detail": "the receiver is not configured yet; try again later"})
    headers = {"content-type": "application/json", "retry-after": str(RETRY_AFTER_SECONDS)}
    return {"statusCode": 503, "headers": headers, "body": body.decode(), "isBase64Encoded": False}


def _receiver(runtime: Runtime) -> Any:
    from mangum import Mangum

    if runtime.settings.github_hooks_allowlist or runtime.settings.webhook_allowed_networks:
        # A function has no background task to refresh GitHub's list, and API Gateway, not the function, is where a
        # request should be stopped: refused, so that no one believes deliveries are filtered here (ADR 0020).
        raise ConfigError(
            "GHINGEST_GITHUB_HOOKS_ALLOWLIST and GHINGEST_WEBHOOK_ALLOWED_NETWORKS do not apply on the AWS profile:"
            " filter the sources in front of the function (ADR 0020)"
        )
    receiver = runtime.receiver()

    async def only_the_webhook(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == PATH:
            await receiver(dict(scope), receive, send)
        else:
            await respond_json(send, 404, {"error": "not_found", "detail": f"this function serves POST {PATH}"})

    return Mangum(only_the_webhook, lifespan="off", api_gateway_base_path="/")


@METRICS.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        mangum = current().built("receiver", _receiver)
    except ConfigError as exc:  # e.g. the secret has no webhook secret yet: refuse, and say why in the log only
        get_logger("ghingest.receiver").error("receiver.not_configured", reason=str(exc)[:300])
        response = not_configured()
    else:
        response = mangum(event, context)
        recorder = current().runtime().rejections
        if recorder is not None and recorder.pending:  # a refusal: recorded now, no task runs between invocations
            current().run(recorder.flush())
    count(response_class(int(response.get("statusCode", 500))))
    return response
