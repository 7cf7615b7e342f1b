"""The AWS serverless profile: DynamoDB (one table), SNS and SQS (notices), S3 (large bodies).

docs/aws/dynamodb.md is the design. `schema` and `keys` describe the table, `options` and `clients` the resources,
`table` the calls every port makes to the table; `items`, `job_items` and `payloads` are the codecs. One module per
port (`inbox`, `store`, `reads`, `feed`, `sessions`, `github_sync`, `forward_queue`, `forward_log`), with `jobs`
(forward jobs' creation and dispatch), `replays` and `forward_queues` (each destination's queue) beside the
forwarding ones; `backend.open_aws_backend` opens them all; `provision` creates the resources outside AWS.
"""

from ghingest.adapters.aws.backend import AwsResources, open_aws_backend
from ghingest.adapters.aws.options import AwsOptions
from ghingest.adapters.aws.provision import provision

__all__ = ["AwsOptions", "AwsResources", "open_aws_backend", "provision"]
