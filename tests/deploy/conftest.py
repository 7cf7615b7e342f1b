"""The AWS stack's tests find `ghingest_cdk` (deploy/aws/) and synthesize once per module, only where node is."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

DEPLOY_AWS = Path(__file__).resolve().parents[2] / "deploy" / "aws"
if str(DEPLOY_AWS) not in sys.path:
    sys.path.insert(0, str(DEPLOY_AWS))

from ghingest_cdk import NODE_MISSING, node_available  # noqa: E402 (found on the path set above)


@pytest.fixture(scope="session")
def node() -> None:
    """Skip where node is missing, with the reason; fail under CI, where a skipped deploy test would hide it."""
    if node_available():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI has no Node.js for the CDK tests: {NODE_MISSING}", pytrace=False)
    pytest.skip(NODE_MISSING)
