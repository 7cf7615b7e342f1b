"""boto3 clients, created once per process (per Lambda container) and shared by every adapter.

boto3 clients are thread-safe; the adapters call them from a thread (`asyncio.to_thread`) so that a slow AWS call
never blocks the event loop. Standard retry mode with a bounded number of attempts: a throttled or failed call is
retried by botocore, then surfaces as `StoreUnavailable` (`unavailable`). Beside the clients: what every adapter
needs to read an AWS failure (`is_error`, `condition_failed`, `reason`) and to set an SQS visibility (`visibility`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from ghingest.adapters.aws.options import AwsOptions
from ghingest.core.errors import StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

MAX_VISIBILITY = 43_200  # s: SQS's longest visibility timeout (a message due later is received again, hidden again)
_CONFIG: dict[str, Any] = {
    "retries": {"mode": "standard", "max_attempts": 4},
    "connect_timeout": 2,
    "read_timeout": 5,
    "max_pool_connections": 32,
}


class AwsClients:
    """The clients of one `AwsOptions` (region and endpoint), made on first use."""

    def __init__(self, options: AwsOptions) -> None:
        self.options = options
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            import boto3
            from botocore.config import Config

            if self._session is None:
                self._session = boto3.session.Session(region_name=self.options.region)
            client = self._session.client(service, endpoint_url=self.options.endpoint_url, config=Config(**_CONFIG))
            self._clients[service] = client
        return client

    @property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @property
    def sns(self) -> Any:
        return self._client("sns")

    @property
    def sqs(self) -> Any:
        return self._client("sqs")

    @property
    def s3(self) -> Any:
        return self._client("s3")

    @property
    def secretsmanager(self) -> Any:
        return self._client("secretsmanager")


_SHARED: dict[tuple[str | None, str | None], AwsClients] = {}


def clients_for(options: AwsOptions) -> AwsClients:
    """One `AwsClients` per region and endpoint in this process: every backend a Lambda container opens, across
    invocations, shares its clients (and their connection pools)."""
    place = (options.region, options.endpoint_url)
    shared = _SHARED.get(place)
    if shared is None:
        shared = _SHARED[place] = AwsClients(options)
    return shared


def is_error(exc: BaseException, *codes: str) -> bool:
    """Whether `exc` is a botocore `ClientError` with one of `codes`."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    return response.get("Error", {}).get("Code") in codes


def condition_failed(exc: BaseException) -> bool:
    """Whether a transaction was cancelled because a condition failed (not for capacity, a conflict, or a fault)."""
    if not is_error(exc, "TransactionCanceledException"):
        return False
    reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
    return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)


def unavailable(exc: BaseException, what: str) -> StoreUnavailable:
    """A `StoreUnavailable` for a failed AWS call: the service's error code, never the request or its data."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return StoreUnavailable(f"{what}: {code or exc.__class__.__name__}")


def reason(exc: BaseException) -> str:
    """What a log line may say of a failure: a `StoreUnavailable`'s message, an AWS error's code, else the class."""
    return str(exc) if isinstance(exc, StoreUnavailable) else str(unavailable(exc, exc.__class__.__name__))


def visibility(seconds: float) -> int:
    """A delay as an SQS visibility timeout: whole seconds, from 0 to SQS's longest (`MAX_VISIBILITY`)."""
    return max(0, min(MAX_VISIBILITY, math.ceil(seconds)))


async def call(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking boto3 call on a thread."""
    return await asyncio.to_thread(function, *args, **kwargs)
