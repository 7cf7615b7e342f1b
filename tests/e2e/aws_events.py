"""The event documents AWS hands a Lambda function, as AWS documents them: API Gateway HTTP API requests (payload
format 2.0) and SQS batches (made from messages received from the moto server's real queues); and the context
object's remaining time."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any


def http_api_request(
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    base64_encoded: bool = False,
    query: str = "",
    source_ip: str = "192.0.2.10",
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event: header names lower-cased, cookies apart, the body as text or base64."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    cookies = [part.strip() for part in lowered.pop("cookie", "").split(";") if part.strip()]
    route = f"{method} {path}" if path == "/webhooks/github" else "$default"
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", **lowered},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", "GitHub-Hookshot/test"),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": base64_encoded,
    }
    if cookies:
        event["cookies"] = cookies
    if body or base64_encoded:
        event["body"] = base64.b64encode(body).decode() if base64_encoded else body.decode("utf-8")
    return event


def sqs_batch(messages: Sequence[Mapping[str, Any]], *, queue_arn: str) -> dict[str, Any]:
    """An SQS event source's batch from messages as `ReceiveMessage` returned them (attributes and message
    attributes requested), in the shape Lambda sends: lower-camel keys, attribute values as strings."""
    records = []
    for message in messages:
        attributes = {name: str(value) for name, value in message.get("Attributes", {}).items()}
        attributes.setdefault("ApproximateReceiveCount", "1")
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": {
                    name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType", "String")}
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


class LambdaContext:
    """The part of Lambda's context object the functions read: the invocation's remaining time (it runs down)."""

    def __init__(self, remaining_ms: int = 300_000) -> None:
        self._ends = time.monotonic() + remaining_ms / 1000
        self.aws_request_id = uuid.uuid4().hex
        self.function_name = "ghingest-test"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))
