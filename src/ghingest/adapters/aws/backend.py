"""`dynamodb://TABLE`: every port on the AWS profile's resources (DynamoDB, SNS, SQS, S3), one `TableContext`
shared by all of them.

The resources are created by the CDK stack in AWS and by `provision` in tests and local runs: `upgrade` only checks
that the table is there (a clear error naming it, not a failure at the first delivery). Closing makes every port
raise `StoreUnavailable`, as closing the other backends does; the boto3 clients stay (they are per process).
The store creates forward jobs through the same `jobs.AwsJobs` as the forward queue's replays
(`forward_queue.AwsForwardQueue`), so that both see one set of destination queues.
"""

from __future__ import annotations

from ghingest.adapters.aws.audit import AwsAuditLog
from ghingest.adapters.aws.clients import AwsClients, clients_for, is_error, unavailable
from ghingest.adapters.aws.feed import AwsChangeFeed
from ghingest.adapters.aws.forward_log import AwsForwardLog
from ghingest.adapters.aws.forward_queue import AwsForwardQueue
from ghingest.adapters.aws.github_sync import AwsGitHubSyncState
from ghingest.adapters.aws.inbox import AwsInbox
from ghingest.adapters.aws.jobs import AwsJobs
from ghingest.adapters.aws.options import AwsOptions
from ghingest.adapters.aws.reads import AwsReads
from ghingest.adapters.aws.rejections import AwsRejectionLog
from ghingest.adapters.aws.sessions import AwsSessionRevocations
from ghingest.adapters.aws.store import AwsStore
from ghingest.adapters.aws.table import TableContext
from ghingest.core.errors import StoreUnavailable
from ghingest.ports import Backend, Clock, ForwardLog, ForwardQueue


class AwsResources:
    def __init__(self, db: TableContext) -> None:
        self._db = db

    def upgrade(self) -> None:
        """No schema to migrate: check that the table exists."""
        try:
            self._db.clients.dynamodb.describe_table(TableName=self._db.table)
        except Exception as exc:
            if is_error(exc, "ResourceNotFoundException"):
                raise StoreUnavailable(
                    f"the DynamoDB table {self._db.table!r} does not exist (deploy the CDK stack, or provision it)"
                ) from None
            raise unavailable(exc, "describe the table") from None

    async def start(self) -> None:
        self._db.closed = False

    async def close(self) -> None:
        self._db.closed = True


def open_aws_backend(
    options: AwsOptions,
    *,
    clock: Clock,
    forwards: ForwardQueue | None = None,
    forward_log: ForwardLog | None = None,
    clients: AwsClients | None = None,
) -> Backend:
    clients = clients if clients is not None else clients_for(options)
    db = TableContext(options, clients, clock)
    jobs = AwsJobs(db)  # one for the store's original jobs and the queue's replays: their queues are shared
    return Backend(
        name="dynamodb",
        inbox=AwsInbox(db),
        store=AwsStore(db, jobs),
        reads=AwsReads(db),
        feed=AwsChangeFeed(db),
        forwards=forwards if forwards is not None else AwsForwardQueue(db, jobs),
        forward_log=forward_log if forward_log is not None else AwsForwardLog(db),
        sessions=AwsSessionRevocations(db),
        github=AwsGitHubSyncState(db),
        rejections=AwsRejectionLog(db),
        audit=AwsAuditLog(db),
        resources=AwsResources(db),
    )
