"""A moto server (server mode: real HTTP, SNS → SQS fan-out, S3) for the whole test session, and fresh AWS
resources per test.

`moto_endpoint()` starts one moto server (`tests/moto_server.py`, a process of its own) on a free loopback port on
first use and stops it at exit. This process gets fake credentials (`testing`) and a region as it starts it, so
that boto3 signs requests without any real credentials: every client in tests is made with `endpoint_url` = the
moto server, nothing ever reaches AWS. `fresh_aws(prefix)` provisions a new table, topics, queues and bucket with
names of their own (`provision`), so that tests never share state; `aws_backend(options, clock)` is a started
backend on them, closed afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ghingest.adapters.aws import AwsOptions, open_aws_backend, provision
from ghingest.adapters.aws.clients import AwsClients
from ghingest.ports import Clock
from tests.conftest import free_port
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


def moto_endpoint() -> str:
    """The session's moto server URL (started on first use, stopped at exit)."""
    global _server, _url
    with _lock:
        if _url is None:
            os.environ.update(_FAKE_ENVIRONMENT)  # tests only: never a real credential
            for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
                os.environ.pop(name, None)
            port = free_port()
            _server = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("moto_server.py")), str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            atexit.register(_stop, _server)
            _wait_listening(port, _server)
            _url = f"http://127.0.0.1:{port}"
        return _url


def _wait_listening(port: int, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the moto server did not start on port {port}") from None
            time.sleep(0.05)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.kill()
    server.wait(timeout=10)


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
