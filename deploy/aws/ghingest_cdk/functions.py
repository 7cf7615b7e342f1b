"""The six Lambda functions, each with its own role, log group and the permissions its role needs, no more.

Permissions are written out as statements, not with CDK's broad `grant_read_write_data`-style helpers, so that
each role names its actions (the receiver cannot delete or scan an item, nor publish a forward job) and every
resource is one of the stack's. The roles carry no managed policy: a function may write to its own log group only.
Every function gets the same environment (the names of every resource), so one settings loader serves all six;
a variable naming a resource a function has no permission on is inert. The GitHub sync alone also gets the GitHub
settings (`github_environment`). Every function may read the secret: each builds the whole runtime at its cold
start (`ghingest.app.aws_lambda.container`), and the runtime refuses to start without a webhook secret, whatever
the role.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Aws, Duration, Fn, Stack, Token
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from constructs import Construct

from ghingest.app.routes_config import ROUTES_FILE_ENV

from . import sizing
from .lambda_code import LambdaCode
from .messaging import Messaging
from .parameters import Parameters
from .sizing import Sizing
from .storage import Storage

SWEEP_EVERY = Duration.minutes(5)
# A scheduled run that cannot start (throttled: the GitHub sync's one slot is taken) is dropped after this, never
# queued for hours: the next run is the retry.
SCHEDULED_EVENT_AGE = Duration.seconds(60)
BATCH_SIZE = 10
INBOX_BATCHING_WINDOW = Duration.seconds(1)  # a second of latency buys fuller batches (fewer invocations)
MIN_MAX_CONCURRENCY = 2  # SQS event sources accept a maximum concurrency of 2 to 1000
# Processor transactions that touch the change feed are serialized on its head (docs/aws/dynamodb.md): more
# concurrent processors than this mostly retry on a moved head. 4 x 10 deliveries per invocation is plenty.
PROCESSOR_MAX_CONCURRENCY = 4

# DynamoDB actions by need. TransactWriteItems is authorized as its parts (Put, Update, Delete, ConditionCheck).
_READ = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
_WRITE = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem", "dynamodb:BatchWriteItem"]
# The stack's key, for the table, bucket, topics and queues (each service asks KMS on the caller's behalf).
_KEY_USE = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]


@dataclass(frozen=True, slots=True)
class Functions:
    receiver: lambda_.Function
    processor: lambda_.Function
    forwarder: lambda_.Function
    dashboard: lambda_.Function
    sweeper: lambda_.Function
    github_sync: lambda_.Function

    def all(self) -> dict[str, lambda_.Function]:
        return {
            "Receiver": self.receiver,
            "Processor": self.processor,
            "Forwarder": self.forwarder,
            "Dashboard": self.dashboard,
            "Sweeper": self.sweeper,
            "GithubSync": self.github_sync,
        }


def environment(
    scope: Construct, storage: Storage, messaging: Messaging, parameters: Parameters, code: LambdaCode
) -> dict[str, str]:
    stack = Stack.of(scope)
    env = {
        "GHINGEST_DATABASE_URL": f"dynamodb://{storage.table.table_name}",
        "GHINGEST_AWS_DELIVERIES_TOPIC_ARN": messaging.deliveries_topic.topic_arn,
        "GHINGEST_AWS_INBOX_QUEUE_URL": messaging.inbox_queue.queue_url,
        "GHINGEST_AWS_FORWARDS_TOPIC_ARN": messaging.forwards_topic.topic_arn,
        "GHINGEST_AWS_FORWARD_QUEUES": stack.to_json_string(
            {f.destination.name: f.queue.queue_url for f in messaging.forward_queues}
        ),
        "GHINGEST_AWS_FORWARD_DEAD_LETTER_QUEUES": stack.to_json_string(
            {f.destination.name: f.dead_letter_queue.queue_url for f in messaging.forward_queues}
        ),
        "GHINGEST_AWS_PAYLOAD_BUCKET": storage.bucket.bucket_name,
        # the body items' TTL (the receiver sets it); the bucket's lifecycle rule expires large bodies alike
        "GHINGEST_AWS_PAYLOAD_RETENTION_DAYS": parameters.payload_retention_days.value_as_string,
        "GHINGEST_AWS_SECRETS_ARN": storage.secret_arn,
        "POWERTOOLS_SERVICE_NAME": "ghingest",
        "POWERTOOLS_METRICS_NAMESPACE": "ghingest",
        "GHINGEST_LOG_LEVEL": parameters.log_level.value_as_string,
    }
    if code.routes_file is not None:
        env[ROUTES_FILE_ENV] = code.routes_file
    return env


def github_environment(parameters: Parameters) -> dict[str, str]:
    """The GitHub sync's own settings (its credentials are in the secret: `github_token`, `github_app_private_key`).
    Without an App id the variable is left out (an empty one is no App id)."""
    app_id = Fn.condition_if(
        parameters.has_github_app_id.logical_id, parameters.github_app_id.value_as_string, Aws.NO_VALUE
    )
    return {
        "GHINGEST_RECONCILE_HOOKS": parameters.reconcile_hooks.value_as_string,
        "GHINGEST_TRACK_REPOSITORIES": parameters.track_repositories.value_as_string,
        "GHINGEST_GITHUB_API_URL": parameters.github_api_url.value_as_string,
        "GHINGEST_GITHUB_APP_ID": Token.as_string(app_id),
        "GHINGEST_GITHUB_MAX_WAIT": str(sizing.GITHUB_SYNC_MAX_WAIT),
    }


def _function(
    scope: Construct,
    name: str,
    size: Sizing,
    *,
    code: LambdaCode,
    storage: Storage,
    env: Mapping[str, str],
    reserved_concurrency: int | None = None,
) -> lambda_.Function:
    role = iam.Role(
        scope,
        f"{name}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"ghingest {name.lower()}: its own log group and what docs/adr/0016 lists",
    )
    log_group = logs.LogGroup(
        scope,
        f"{name}Logs",
        retention=sizing.LOG_RETENTION,
        encryption_key=storage.key,
    )
    log_group.grant_write(role)
    storage.key.grant(role, *_KEY_USE)
    return lambda_.Function(
        scope,
        name,
        runtime=sizing.RUNTIME,
        architecture=sizing.ARCHITECTURE,
        handler=size.handler,
        code=code.code,
        memory_size=size.memory_mb,
        timeout=Duration.seconds(size.timeout_seconds),
        description=size.description,
        environment=dict(env),
        role=role,
        log_group=log_group,
        reserved_concurrent_executions=reserved_concurrency,
    )


def _allow(function: lambda_.Function, actions: list[str], resources: list[str]) -> None:
    function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources))


def define_functions(
    scope: Construct, storage: Storage, messaging: Messaging, parameters: Parameters, code: LambdaCode
) -> Functions:
    env = environment(scope, storage, messaging, parameters, code)

    def make(
        name: str, size: Sizing, *, more_env: Mapping[str, str] | None = None, reserved_concurrency: int | None = None
    ) -> lambda_.Function:
        merged = {**env, **(more_env or {})}
        return _function(
            scope, name, size, code=code, storage=storage, env=merged, reserved_concurrency=reserved_concurrency
        )

    secret = [storage.secret_arn]
    table = storage.table.table_arn
    indexes = f"{table}/index/*"
    objects = storage.bucket.arn_for_objects("*")
    deliveries = messaging.deliveries_topic.topic_arn
    forwards = messaging.forwards_topic.topic_arn

    receiver = make("Receiver", sizing.RECEIVER)
    _allow(receiver, ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], [table])
    _allow(receiver, ["sns:Publish"], [deliveries])
    _allow(receiver, ["s3:PutObject"], [objects])
    _allow(receiver, ["secretsmanager:GetSecretValue"], secret)

    processor = make("Processor", sizing.PROCESSOR)
    _allow(processor, [*_READ, *_WRITE, "dynamodb:DeleteItem"], [table, indexes])
    _allow(processor, ["sns:Publish"], [forwards])
    _allow(processor, ["s3:GetObject"], [objects])
    _allow(processor, ["secretsmanager:GetSecretValue"], secret)  # every role's runtime starts with the secrets
    processor.add_event_source(
        sources.SqsEventSource(
            messaging.inbox_queue,
            batch_size=BATCH_SIZE,
            max_batching_window=INBOX_BATCHING_WINDOW,
            report_batch_item_failures=True,
            max_concurrency=PROCESSOR_MAX_CONCURRENCY,
        )
    )

    forwarder = make("Forwarder", sizing.FORWARDER)
    _allow(forwarder, [*_READ, *_WRITE], [table, indexes])
    _allow(forwarder, ["s3:GetObject"], [objects])
    _allow(forwarder, ["secretsmanager:GetSecretValue"], secret)
    if messaging.forward_queues:
        _allow(forwarder, ["sqs:SendMessage"], [f.dead_letter_queue.queue_arn for f in messaging.forward_queues])
    for forward in messaging.forward_queues:
        concurrency = forward.destination.concurrency
        forwarder.add_event_source(
            sources.SqsEventSource(
                forward.queue,
                batch_size=BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=max(MIN_MAX_CONCURRENCY, min(1000, concurrency)) if concurrency else None,
            )
        )

    dashboard = make("Dashboard", sizing.DASHBOARD)
    _allow(dashboard, [*_READ, *_WRITE, "dynamodb:DeleteItem"], [table, indexes])
    _allow(dashboard, ["sns:Publish"], [deliveries, forwards])
    _allow(dashboard, ["s3:GetObject"], [objects])
    _allow(dashboard, ["secretsmanager:GetSecretValue"], secret)

    sweeper = make("Sweeper", sizing.SWEEPER)
    _allow(sweeper, ["dynamodb:Query", "dynamodb:UpdateItem"], [table, indexes])
    _allow(sweeper, ["sns:Publish"], [deliveries, forwards])
    _allow(sweeper, ["secretsmanager:GetSecretValue"], secret)
    events.Rule(
        scope,
        "SweepSchedule",
        description="ghingest sweeper: announce what was recorded and never announced",
        schedule=events.Schedule.rate(SWEEP_EVERY),
        targets=[targets.LambdaFunction(sweeper, retry_attempts=0)],  # the next run is the retry
    )

    # One run at a time (its leases in the table make sure of it too). It appends polled releases to the inbox as
    # the receiver does (the delivery and body items in one transaction, a large body in the bucket, the notice on
    # the deliveries topic); it reads and writes its own items (gaps, scans, tracked repositories, leases) and reads
    # which hooks delivered each delivery. GitHub is reached over the internet: a function outside a VPC has it.
    github_sync = make(
        "GithubSync", sizing.GITHUB_SYNC, more_env=github_environment(parameters), reserved_concurrency=1
    )
    _allow(github_sync, _READ, [table, indexes])
    _allow(github_sync, ["dynamodb:PutItem", "dynamodb:DeleteItem"], [table])  # no UpdateItem, no Scan
    _allow(github_sync, ["sns:Publish"], [deliveries])
    _allow(github_sync, ["s3:PutObject"], [objects])
    _allow(github_sync, ["secretsmanager:GetSecretValue"], secret)
    github_sync.configure_async_invoke(retry_attempts=0, max_event_age=SCHEDULED_EVENT_AGE)
    events.Rule(
        scope,
        "GithubSyncSchedule",
        description="ghingest GitHub sync: reconcile the hooks' deliveries, poll the tracked repositories' releases",
        schedule=events.Schedule.expression(f"rate({parameters.github_sync_minutes.value_as_string} minutes)"),
        targets=[targets.LambdaFunction(github_sync, retry_attempts=0)],
    )
    return Functions(receiver, processor, forwarder, dashboard, sweeper, github_sync)
