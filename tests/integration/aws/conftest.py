"""AWS integration fixtures: a backend on fresh resources of the session's moto server (tests/aws_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ghingest.adapters.aws import AwsOptions, open_aws_backend
from ghingest.ports import Backend, ManualClock
from tests.aws_support import aws_backend, fresh_aws


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def options() -> AwsOptions:
    return fresh_aws("integration")


@pytest.fixture
def open_backend(clock: ManualClock) -> Callable[[AwsOptions], Backend]:
    def make(options: AwsOptions) -> Backend:
        return open_aws_backend(options, clock=clock)

    return make


@pytest.fixture
async def backend(options: AwsOptions, clock: ManualClock) -> AsyncIterator[Any]:
    async with aws_backend(options, clock) as opened:
        yield opened
