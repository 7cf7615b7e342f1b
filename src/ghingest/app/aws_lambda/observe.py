"""CloudWatch metrics from the Lambda functions, as embedded metric format log lines (AWS Lambda Powertools'
`Metrics`): no API call on the request path, flushed once at the end of each invocation by `log_metrics`.

Namespace and service come from `POWERTOOLS_METRICS_NAMESPACE` and `POWERTOOLS_SERVICE_NAME` (the CDK stack sets
them); the default namespace is `ghingest`. These count what each function did; latency, errors, throttles and
queue ages are AWS's own metrics, which the stack's alarms watch.
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

METRICS = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ghingest"))
# An invocation that failed before it counted anything (a configuration error, a store that is down) has nothing
# to publish; Powertools would warn so on each one, beside the error the function already raised and logged.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def count(name: str, value: int = 1) -> None:
    """Add to a count of this invocation (zero too: a sum of 0 is a data point, not a gap in the graph)."""
    METRICS.add_metric(name=name, unit=MetricUnit.Count, value=value)


def response_class(status: int) -> str:
    """The metric a webhook response counts in."""
    if status == 202:
        return "DeliveriesAccepted"
    if status == 200:
        return "DeliveriesDuplicate"
    return "WebhookRejected" if status < 500 else "WebhookUnavailable"
