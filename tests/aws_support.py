"""A moto server (server mode: real HTTP, SNS → SQS fan-out, S3) for the whole test session, and fresh AWS
resources per test.

`moto_endpoint()` starts one `ThreadedMotoServer` on a free loopback port on first use and stops it at exit. The
process gets fake credentials (`testing`) and a region as it starts it, so that boto3 signs requests without any
real credentials: every client in tests is made with `endpoint_url` = the moto server, nothing ever reaches AWS.
`fresh_aws(prefix)` provisions a new table, topics, queues and bucket with names of their own (`provision`), so that
tests never share state; `aws_backend(options, clock)` is a started backend on them, closed afterwards.

A moto quirk, worked around here: moto's `TransactWriteItems` takes no lock, and a cancelled transaction restores
a copy of the whole table taken when it began, which undoes every write another request committed meanwhile
(concurrent processors lost each other's feed entries). DynamoDB's transactions are isolated: `_isolate_writes`
makes moto's writes take one lock, as if they were.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ghingest.adapters.aws import AwsOptions, open_aws_backend, provision
from ghingest.adapters.aws.clients import AwsClients
from ghingest.ports import Clock
from tests.contract.backends import started

REGION = "us-east-1"
_FAKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
_lock = threading.Lock()
_server: Any = None
_url: str | None = None


def _isolate_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("transact_write_items", "put_item", "update_item", "delete_item", "batch_write_item"):
        original = getattr(DynamoDBBackend, name)

        def isolated(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, isolated)


def moto_endpoint() -> str:
    """The session's moto server URL (started on first use, stopped at exit)."""
    global _server, _url
    with _lock:
        if _url is None:
            from moto.server import ThreadedMotoServer

            os.environ.update(_FAKE_ENVIRONMENT)  # tests only: never a real credential
            for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
                os.environ.pop(name, None)
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
            _isolate_writes()
            _server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            _server.start()
            host, port = _server.get_host_and_port()
            _url = f"http://{host}:{port}"
            atexit.register(_server.stop)
        return _url


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def fresh_aws(prefix: str = "ghingest", **overrides: Any) -> AwsOptions:
    """Options for new, empty resources on the moto server (a table, topics, queues and a bucket of their own)."""
    options = AwsOptions(
        table=unique_name(prefix), region=REGION, endpoint_url=moto_endpoint(), create_missing_queues=True, **overrides
    )
    return provision(options, AwsClients(options))


@contextlib.asynccontextmanager
async def aws_backend(options: AwsOptions, clock: Clock, **more: Any) -> AsyncIterator[Any]:
    """A backend on `options`' resources (`open_aws_backend(options, clock=clock, **more)`), started; closed after."""
    async with started(open_aws_backend(options, clock=clock, **more)) as backend:
        yield backend
