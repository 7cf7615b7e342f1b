"""The AWS serverless profile's CDK app: one CloudFormation stack, synthesized offline (no account, no lookups).

This package imports no `aws_cdk` at import time on purpose: `aws_cdk` starts a Node.js process (jsii) when it is
first imported, and `require_node` must be able to say so in one line before that import fails obscurely.
"""

from __future__ import annotations

import os
import shutil

NODE_MISSING = (
    "ghingest's CDK app needs Node.js: aws-cdk-lib runs its constructs in node through jsii; "
    "install Node.js 18 or later and put `node` on PATH (or set JSII_NODE to its path)"
)


def node_available() -> bool:
    """Whether the node binary jsii will start (`JSII_NODE`, else `node` on PATH) exists."""
    return shutil.which(os.environ.get("JSII_NODE", "node")) is not None


def require_node() -> None:
    """Exit with one clear line when node is missing (call before importing `aws_cdk`)."""
    if not node_available():
        raise SystemExit(NODE_MISSING)
