"""The AWS profile's CloudFormation template, synthesized once with two destinations from a route file: every
resource with the properties the profile relies on, least-privilege roles, and cfn-lint finding no error.

The rules of `ghingest_cdk.config` (filter policies, context) are plain functions and need no node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ghingest_cdk import NODE_MISSING
from ghingest_cdk.config import (
    MAX_FILTER_COMBINATIONS,
    ConfigError,
    DestinationSpec,
    config_from_context,
)

from ghingest.adapters.aws import schema

from .conftest import DEPLOY_AWS

ROUTES = """
[[destinations]]
name = "ci"
url = "https://ci.example/hooks"
secret = "ci-secret"
concurrency = 8
retry = { max_attempts = 5 }

[[destinations]]
name = "chat"
url = "https://chat.example/in"
secret_env = "CHAT_SECRET"  # not set where the template is synthesized

[[routes]]
name = "releases-to-ci"
destinations = ["ci"]
events = ["release"]
actions = ["published", "released"]

[[routes]]
name = "pushes-to-chat"
destinations = ["chat"]
events = ["push"]

[[routes]]
name = "issues-to-chat"
destinations = ["chat"]
events = ["issues"]
actions = ["opened"]
"""

HANDLERS = {
    "receiver": "ghingest.app.aws_lambda.receiver.handler",
    "processor": "ghingest.app.aws_lambda.processor.handler",
    "forwarder": "ghingest.app.aws_lambda.forwarder.handler",
    "dashboard": "ghingest.app.aws_lambda.dashboard.handler",
    "sweeper": "ghingest.app.aws_lambda.sweeper.handler",
    "github_sync": "ghingest.app.aws_lambda.github_sync.handler",
}
ENVIRONMENT = {
    "GHINGEST_DATABASE_URL",
    "GHINGEST_AWS_DELIVERIES_TOPIC_ARN",
    "GHINGEST_AWS_INBOX_QUEUE_URL",
    "GHINGEST_AWS_FORWARDS_TOPIC_ARN",
    "GHINGEST_AWS_FORWARD_QUEUES",
    "GHINGEST_AWS_FORWARD_DEAD_LETTER_QUEUES",
    "GHINGEST_AWS_PAYLOAD_BUCKET",
    "GHINGEST_AWS_PAYLOAD_RETENTION_DAYS",
    "GHINGEST_AWS_SECRETS_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "GHINGEST_LOG_LEVEL",
    "GHINGEST_ROUTES_FILE",
}
GITHUB_ENVIRONMENT = {  # the GitHub sync's own settings, on it alone
    "GHINGEST_RECONCILE_HOOKS",
    "GHINGEST_TRACK_REPOSITORIES",
    "GHINGEST_GITHUB_API_URL",
    "GHINGEST_GITHUB_APP_ID",
    "GHINGEST_GITHUB_MAX_WAIT",
}
# cfn-lint warnings the template may carry, each with why.
ALLOWED_LINT_WARNINGS = {
    # CDK's Function adds DependsOn its role (and the role's policy), which Fn::GetAtt of the role already implies;
    # the explicit edge to the default policy is what keeps an event source from starting before its permissions.
    "W3005",
}

Template = dict[str, Any]


@dataclass(frozen=True)
class Synthesized:
    template: Template
    path: Path  # the template's file in the cloud assembly
    stack: Any  # aws_cdk.Stack (imported only where node is)


@pytest.fixture(scope="module")
def synthesized(node: None, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """One synthesis for the whole module: starting node and synthesizing takes seconds."""
    from aws_cdk import App
    from ghingest_cdk.stack import GhingestStack

    root = tmp_path_factory.mktemp("aws-stack")
    routes = root / "routes.toml"
    routes.write_text(ROUTES, encoding="utf-8")
    context = {"routesFile": str(routes), "buildDir": str(root / "build")}
    app = App(outdir=str(root / "cdk.out"), context=context)
    stack = GhingestStack(app, "GhingestStack", config=config_from_context(context, base=root))
    assembly = app.synth()
    path = Path(assembly.directory) / "GhingestStack.template.json"
    return Synthesized(template=json.loads(path.read_text(encoding="utf-8")), path=path, stack=stack)


@pytest.fixture(scope="module")
def template(synthesized: Synthesized) -> Template:
    return synthesized.template


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def one(template: Template, kind: str) -> tuple[str, dict[str, Any]]:
    (item,) = resources(template, kind).items()
    return item


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def arn_of(name: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, "Arn"]}


def functions(template: Template) -> dict[str, tuple[str, dict[str, Any]]]:
    """Role name (receiver, ...) → (logical id, properties), found by handler."""
    by_handler = {
        r["Properties"]["Handler"]: (n, r["Properties"])
        for n, r in resources(template, "AWS::Lambda::Function").items()
    }
    return {role: by_handler[handler] for role, handler in HANDLERS.items()}


def queues(template: Template) -> dict[str, str]:
    """Queue logical ids by purpose: inbox, inbox-dlq, ci, ci-dlq, chat, chat-dlq."""
    found: dict[str, str] = {}
    for name in resources(template, "AWS::SQS::Queue"):
        prefix = "inbox" if name.startswith("Inbox") else name.removeprefix("Destination").split("Forward")[0]
        found[prefix + ("-dlq" if "DeadLetterQueue" in name else "")] = name
    return found


def policy_of(template: Template, function: str) -> list[dict[str, Any]]:
    role_id = functions(template)[function][1]["Role"]["Fn::GetAtt"][0]
    statements: list[dict[str, Any]] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if ref(role_id) in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed(statements: list[dict[str, Any]], action: str) -> list[Any]:
    """The resources on which `statements` allow `action` (exactly named)."""
    return [
        resource
        for s in statements
        if s["Effect"] == "Allow" and action in as_list(s["Action"])
        for resource in as_list(s["Resource"])
    ]


# The HTTP API -------------------------------------------------------------------------------------------------


def test_http_api_routes_webhooks_to_the_receiver_and_the_rest_to_the_dashboard(template: Template) -> None:
    api, properties = one(template, "AWS::ApiGatewayV2::Api")
    assert properties["Properties"]["ProtocolType"] == "HTTP"
    fns = functions(template)
    integrations = resources(template, "AWS::ApiGatewayV2::Integration")
    target_of = {}
    for name, integration in integrations.items():
        p = integration["Properties"]
        assert (p["IntegrationType"], p["PayloadFormatVersion"]) == ("AWS_PROXY", "2.0")
        target_of[name] = p["IntegrationUri"]["Fn::GetAtt"][0]
    routes = {
        r["Properties"]["RouteKey"]: target_of[r["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]]
        for r in resources(template, "AWS::ApiGatewayV2::Route").values()
    }
    assert routes == {"POST /webhooks/github": fns["receiver"][0], "$default": fns["dashboard"][0]}
    _, stage = one(template, "AWS::ApiGatewayV2::Stage")
    assert stage["Properties"]["StageName"] == "$default"
    assert stage["Properties"]["AutoDeploy"] is True
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": ref("ThrottleBurstLimit"),
        "ThrottlingRateLimit": ref("ThrottleRateLimit"),
    }
    assert "DestinationArn" in stage["Properties"]["AccessLogSettings"]
    assert stage["Properties"]["ApiId"] == ref(api)


def test_outputs_name_the_webhook_and_dashboard_urls(template: Template) -> None:
    api, _ = one(template, "AWS::ApiGatewayV2::Api")
    endpoint = {"Fn::GetAtt": [api, "ApiEndpoint"]}
    outputs = template["Outputs"]
    assert outputs["WebhookUrl"]["Value"] == {"Fn::Join": ["", [endpoint, "/webhooks/github"]]}
    assert outputs["DashboardUrl"]["Value"] == {"Fn::Join": ["", [endpoint, "/"]]}


# Functions ----------------------------------------------------------------------------------------------------


def test_six_functions_with_the_exact_handlers_runtime_and_environment(template: Template) -> None:
    fns = functions(template)
    assert len(resources(template, "AWS::Lambda::Function")) == 6
    table, _ = one(template, "AWS::DynamoDB::Table")
    for role, (_, properties) in fns.items():
        assert properties["Runtime"] == "python3.12"
        assert properties["Architectures"] == ["arm64"]
        variables = properties["Environment"]["Variables"]
        assert set(variables) == ENVIRONMENT | (GITHUB_ENVIRONMENT if role == "github_sync" else set())
        assert variables["GHINGEST_DATABASE_URL"] == {"Fn::Join": ["", ["dynamodb://", ref(table)]]}
        assert variables["GHINGEST_ROUTES_FILE"] == "/var/task/routes.toml"
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "ghingest"
        assert variables["GHINGEST_LOG_LEVEL"] == ref("LogLevel")
        # the body items' TTL, by the same parameter as the payload bucket's lifecycle rule
        assert variables["GHINGEST_AWS_PAYLOAD_RETENTION_DAYS"] == ref("PayloadRetentionDays")
        assert variables["GHINGEST_AWS_SECRETS_ARN"] == {
            "Fn::If": ["CreatesSecret", ref(one(template, "AWS::SecretsManager::Secret")[0]), ref("ExistingSecretArn")]
        }
    # the processor's timeout x 6 is the inbox's visibility timeout (AWS's advice for a Lambda event source)
    inbox = template["Resources"][queues(template)["inbox"]]["Properties"]
    assert inbox["VisibilityTimeout"] >= 6 * fns["processor"][1]["Timeout"]


def test_the_forward_queue_maps_are_json_objects_by_destination(template: Template) -> None:
    _, properties = functions(template)["forwarder"]
    q = queues(template)
    for variable, suffix in (("GHINGEST_AWS_FORWARD_QUEUES", ""), ("GHINGEST_AWS_FORWARD_DEAD_LETTER_QUEUES", "-dlq")):
        parts = properties["Environment"]["Variables"][variable]["Fn::Join"][1]
        # resolve the join with each Ref as a placeholder URL: the result must be the JSON object expected
        text = "".join(p if isinstance(p, str) else f"https://sqs/{p['Ref']}" for p in parts)
        assert json.loads(text) == {name: f"https://sqs/{q[name + suffix]}" for name in ("ci", "chat")}


def test_every_function_logs_to_its_own_group_with_a_retention(template: Template) -> None:
    groups = resources(template, "AWS::Logs::LogGroup")
    assert len(groups) == 7  # six functions and the API's access log
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 30
        assert "KmsKeyId" in group["Properties"]
    used = {p["LoggingConfig"]["LogGroup"]["Ref"] for _, p in functions(template).values()}
    assert len(used) == 6
    assert used <= set(groups)


def test_the_processor_and_forwarder_consume_their_queues_reporting_item_failures(template: Template) -> None:
    fns = functions(template)
    q = queues(template)
    mappings = {
        m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m["Properties"]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
    }
    assert set(mappings) == {q["inbox"], q["ci"], q["chat"]}
    for mapping in mappings.values():
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["BatchSize"] == 10
    assert mappings[q["inbox"]]["FunctionName"] == ref(fns["processor"][0])
    assert 0 < mappings[q["inbox"]]["MaximumBatchingWindowInSeconds"] <= 5
    assert mappings[q["inbox"]]["ScalingConfig"] == {"MaximumConcurrency": 4}  # the change feed's head
    assert mappings[q["ci"]]["FunctionName"] == mappings[q["chat"]]["FunctionName"] == ref(fns["forwarder"][0])
    assert mappings[q["ci"]]["ScalingConfig"] == {"MaximumConcurrency": 8}  # the destination's concurrency


def schedules(template: Template) -> dict[str, dict[str, Any]]:
    """The EventBridge rules' properties by the function they invoke (its logical id)."""
    found = {}
    for rule in resources(template, "AWS::Events::Rule").values():
        (target,) = rule["Properties"]["Targets"]
        found[target["Arn"]["Fn::GetAtt"][0]] = rule["Properties"]
    return found


def test_the_sweeper_runs_every_five_minutes(template: Template) -> None:
    rule = schedules(template)[functions(template)["sweeper"][0]]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert len(schedules(template)) == 2  # the sweeper's and the GitHub sync's


def test_the_github_sync_runs_on_its_schedule_one_at_a_time_and_ends_before_the_next_run(template: Template) -> None:
    name, properties = functions(template)["github_sync"]
    rule = schedules(template)[name]
    assert rule["ScheduleExpression"] == {"Fn::Join": ["", ["rate(", ref("GitHubSyncMinutes"), " minutes)"]]}
    assert rule["Targets"][0]["RetryPolicy"] == {"MaximumRetryAttempts": 0}  # the next run is the retry
    minutes = template["Parameters"]["GitHubSyncMinutes"]
    assert (minutes["Type"], minutes["Default"], minutes["MinValue"]) == ("Number", 5, 5)
    assert properties["Timeout"] < 60 * minutes["MinValue"]  # a run ends before the next one starts
    assert properties["Timeout"] >= 240  # about five minutes of GitHub's API per run
    assert properties["ReservedConcurrentExecutions"] == 1
    others = [p for role, (_, p) in functions(template).items() if role != "github_sync"]
    assert all("ReservedConcurrentExecutions" not in p for p in others)
    # A run that cannot start (throttled) is dropped within a minute, and a failed one is not run again: never a
    # queue of runs behind the one slot.
    (config,) = [
        c["Properties"]
        for c in resources(template, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == ref(name)
    ]
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (0, 60)


def test_the_github_sync_s_settings_come_from_parameters(template: Template) -> None:
    variables = functions(template)["github_sync"][1]["Environment"]["Variables"]
    assert variables["GHINGEST_RECONCILE_HOOKS"] == ref("ReconcileHooks")
    assert variables["GHINGEST_TRACK_REPOSITORIES"] == ref("TrackRepositories")
    assert variables["GHINGEST_GITHUB_API_URL"] == ref("GitHubApiUrl")
    # no App id: no variable at all (an empty one is no valid App id)
    assert variables["GHINGEST_GITHUB_APP_ID"] == {
        "Fn::If": ["HasGitHubAppId", ref("GitHubAppId"), ref("AWS::NoValue")]
    }
    assert template["Conditions"]["HasGitHubAppId"] == {"Fn::Not": [{"Fn::Equals": [ref("GitHubAppId"), ""]}]}
    assert int(variables["GHINGEST_GITHUB_MAX_WAIT"]) < 30  # a longer wait ends the run, inside the 30 s reserve
    parameters = template["Parameters"]
    assert {name: parameters[name]["Default"] for name in ("ReconcileHooks", "TrackRepositories", "GitHubAppId")} == {
        "ReconcileHooks": "", "TrackRepositories": "", "GitHubAppId": ""
    }  # fmt: skip
    assert parameters["GitHubApiUrl"]["Default"] == "https://api.github.com"


# Data at rest -------------------------------------------------------------------------------------------------


def test_one_table_with_the_schema_keys_indexes_ttl_recovery_and_the_stack_key(template: Template) -> None:
    name, table = one(template, "AWS::DynamoDB::Table")
    key, _ = one(template, "AWS::KMS::Key")
    p = table["Properties"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert p["KeySchema"] == [
        {"AttributeName": schema.PARTITION_KEY, "KeyType": "HASH"},
        {"AttributeName": schema.SORT_KEY, "KeyType": "RANGE"},
    ]
    assert {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]} == dict.fromkeys(
        schema.KEY_ATTRIBUTES, "S"
    )
    assert [
        (i["IndexName"], i["KeySchema"][0]["AttributeName"], i["KeySchema"][1]["AttributeName"], i["Projection"])
        for i in p["GlobalSecondaryIndexes"]
    ] == [(i.name, i.partition_key, i.sort_key, {"ProjectionType": "ALL"}) for i in schema.INDEXES]
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["TimeToLiveSpecification"] == {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True}
    assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert p["SSESpecification"] == {"KMSMasterKeyId": arn_of(key), "SSEEnabled": True, "SSEType": "KMS"}
    assert p["DeletionProtectionEnabled"] is True
    assert name


def test_one_customer_managed_key_rotated(template: Template) -> None:
    _, key = one(template, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"


def test_the_payload_bucket_is_private_tls_only_encrypted_and_expires_by_parameter(template: Template) -> None:
    bucket, properties = one(template, "AWS::S3::Bucket")
    p = properties["Properties"]
    assert p["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    (rule,) = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    condition, enabled, disabled = p["LifecycleConfiguration"]["Fn::If"]
    assert (condition, disabled) == ("HasPayloadRetention", ref("AWS::NoValue"))
    assert enabled["Rules"][0]["ExpirationInDays"] == ref("PayloadRetentionDays")
    assert template["Conditions"]["HasPayloadRetention"] == {
        "Fn::Not": [{"Fn::Equals": [ref("PayloadRetentionDays"), "0"]}]
    }
    _, policy = one(template, "AWS::S3::BucketPolicy")
    assert policy["Properties"]["Bucket"] == ref(bucket)
    assert {
        "Action": "s3:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": [arn_of(bucket), {"Fn::Join": ["", [arn_of(bucket), "/*"]]}],
    } in policy["Properties"]["PolicyDocument"]["Statement"]


def test_the_secret_is_generated_with_a_session_secret_unless_one_is_given(template: Template) -> None:
    _, secret = one(template, "AWS::SecretsManager::Secret")
    assert secret["Condition"] == "CreatesSecret"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "session_secret"
    assert json.loads(generated["SecretStringTemplate"]) == {"webhook_secrets": [], "api_tokens": []}
    assert "KmsKeyId" in secret["Properties"]
    assert template["Conditions"]["CreatesSecret"] == {"Fn::Equals": [ref("ExistingSecretArn"), ""]}


# Notices ------------------------------------------------------------------------------------------------------


def test_three_topics_all_encrypted(template: Template) -> None:
    key, _ = one(template, "AWS::KMS::Key")
    topics = resources(template, "AWS::SNS::Topic")
    assert sorted(n.split("Topic")[0] for n in topics) == ["Alarm", "Deliveries", "Forwards"]
    for topic in topics.values():
        assert topic["Properties"]["KmsMasterKeyId"] == arn_of(key)


def test_queues_are_encrypted_and_redrive_to_their_dead_letter_queue(template: Template) -> None:
    key, _ = one(template, "AWS::KMS::Key")
    q = queues(template)
    assert set(q) == {"inbox", "inbox-dlq", "ci", "ci-dlq", "chat", "chat-dlq"}
    expected_receives = {"inbox": 10, "ci": 4 * 5 + 20, "chat": 4 * 10 + 20}  # several receives per attempt
    for name, receives in expected_receives.items():
        queue = template["Resources"][q[name]]["Properties"]
        dead = template["Resources"][q[name + "-dlq"]]["Properties"]
        assert queue["RedrivePolicy"] == {"deadLetterTargetArn": arn_of(q[name + "-dlq"]), "maxReceiveCount": receives}
        assert dead["MessageRetentionPeriod"] == queue["MessageRetentionPeriod"] == 14 * 86400
        for properties in (queue, dead):
            assert properties["KmsMasterKeyId"] == arn_of(key)
    forwarder_timeout = functions(template)["forwarder"][1]["Timeout"]
    for name in ("ci", "chat"):
        assert template["Resources"][q[name]]["Properties"]["VisibilityTimeout"] >= forwarder_timeout


def test_subscriptions_deliver_raw_and_filter_each_destination_by_its_routes(template: Template) -> None:
    q = queues(template)
    subscriptions = {
        s["Properties"]["Endpoint"]["Fn::GetAtt"][0]: s["Properties"]
        for s in resources(template, "AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "sqs"
    }
    deliveries = ref(next(n for n in resources(template, "AWS::SNS::Topic") if n.startswith("Deliveries")))
    forwards = ref(next(n for n in resources(template, "AWS::SNS::Topic") if n.startswith("Forwards")))
    assert subscriptions[q["inbox"]]["TopicArn"] == deliveries
    assert "FilterPolicy" not in subscriptions[q["inbox"]]
    assert subscriptions[q["ci"]]["TopicArn"] == subscriptions[q["chat"]]["TopicArn"] == forwards
    assert subscriptions[q["ci"]]["FilterPolicy"] == {
        "destination": ["ci"],
        "event": ["release"],
        "action": ["published", "released"],
    }
    # a route to chat takes any action of `push`: no action filter (a push notice has no `action` attribute)
    assert subscriptions[q["chat"]]["FilterPolicy"] == {"destination": ["chat"], "event": ["issues", "push"]}
    for subscription in subscriptions.values():
        assert subscription["RawMessageDelivery"] is True
        assert set(subscription.get("FilterPolicy", {})) <= set(schema.FORWARD_NOTICE_ATTRIBUTES)


# Alarms -------------------------------------------------------------------------------------------------------


def test_alarms_watch_dead_letters_queue_age_errors_and_throttles(template: Template) -> None:
    q = queues(template)
    alarm_topic = ref(next(n for n in resources(template, "AWS::SNS::Topic") if n.startswith("Alarm")))
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    seen: set[tuple[str, str]] = set()
    for alarm in alarms:
        assert alarm["AlarmActions"] == [alarm_topic]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        (dimension,) = alarm["Dimensions"]
        seen.add((alarm["MetricName"], dimension["Value"].get("Ref") or dimension["Value"]["Fn::GetAtt"][0]))
        if alarm["MetricName"] in ("ApproximateNumberOfMessagesVisible", "Errors", "Throttles"):
            assert alarm["Threshold"] == 0
    for name in ("inbox", "ci", "chat"):
        assert ("ApproximateNumberOfMessagesVisible", q[name + "-dlq"]) in seen
        assert ("ApproximateAgeOfOldestMessage", q[name]) in seen
    for function, _ in functions(template).values():
        assert ("Errors", function) in seen
        assert ("Throttles", function) in seen
    assert len(alarms) == 3 * 2 + 6 * 2
    (email,) = (
        s for s in resources(template, "AWS::SNS::Subscription").values() if s["Properties"]["Protocol"] == "email"
    )
    assert email["Condition"] == "HasAlarmEmail"
    assert email["Properties"]["Endpoint"] == ref("AlarmEmail")


# Least privilege ----------------------------------------------------------------------------------------------


def test_no_policy_allows_every_action_of_a_service_or_every_resource(template: Template) -> None:
    for name, policy in resources(template, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in as_list(statement["Action"]):
                assert action != "*", name
                assert not action.endswith(":*"), (name, action)
            assert "*" not in as_list(statement["Resource"]), (name, statement)
    for name, role in resources(template, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], name  # no AWSLambdaBasicExecutionRole (logs on *)


def test_the_receiver_records_and_announces_only(template: Template) -> None:
    statements = policy_of(template, "receiver")
    table, _ = one(template, "AWS::DynamoDB::Table")
    topics = resources(template, "AWS::SNS::Topic")
    forwards = next(n for n in topics if n.startswith("Forwards"))
    deliveries = next(n for n in topics if n.startswith("Deliveries"))
    actions = {a for s in statements for a in as_list(s["Action"])}
    for forbidden in (
        "dynamodb:DeleteItem",
        "dynamodb:Scan",
        "dynamodb:BatchWriteItem",
        "s3:GetObject",
        "s3:DeleteObject",
    ):
        assert forbidden not in actions
    assert allowed(statements, "sns:Publish") == [ref(deliveries)]
    assert ref(forwards) not in allowed(statements, "sns:Publish")
    assert allowed(statements, "dynamodb:PutItem") == [arn_of(table)]
    assert allowed(statements, "secretsmanager:GetSecretValue") == [
        template["Resources"][functions(template)["receiver"][0]]["Properties"]["Environment"]["Variables"][
            "GHINGEST_AWS_SECRETS_ARN"
        ]
    ]
    assert not any(a.startswith("sqs:") for a in actions)


def test_each_role_has_what_its_function_needs(template: Template) -> None:
    topics = resources(template, "AWS::SNS::Topic")
    forwards = ref(next(n for n in topics if n.startswith("Forwards")))
    deliveries = ref(next(n for n in topics if n.startswith("Deliveries")))
    q = queues(template)

    processor = policy_of(template, "processor")
    assert allowed(processor, "sns:Publish") == [forwards]
    assert allowed(processor, "dynamodb:ConditionCheckItem")  # a transaction's condition
    assert allowed(processor, "sqs:DeleteMessage") == [arn_of(q["inbox"])]

    forwarder = policy_of(template, "forwarder")
    assert sorted(json.dumps(r) for r in allowed(forwarder, "sqs:SendMessage")) == sorted(
        json.dumps(arn_of(q[n])) for n in ("ci-dlq", "chat-dlq")
    )
    assert sorted(json.dumps(r) for r in allowed(forwarder, "sqs:ChangeMessageVisibility")) == sorted(
        json.dumps(arn_of(q[n])) for n in ("ci", "chat")
    )
    assert not allowed(forwarder, "sns:Publish")
    assert allowed(forwarder, "secretsmanager:GetSecretValue")

    dashboard = policy_of(template, "dashboard")
    assert allowed(dashboard, "sns:Publish") == [deliveries, forwards]
    assert allowed(dashboard, "s3:GetObject")
    assert not allowed(dashboard, "s3:PutObject")

    sweeper = policy_of(template, "sweeper")
    dynamodb = {a for s in sweeper for a in as_list(s["Action"]) if a.startswith("dynamodb:")}
    assert dynamodb == {"dynamodb:Query", "dynamodb:UpdateItem"}
    assert allowed(sweeper, "sns:Publish") == [deliveries, forwards]
    for role in HANDLERS:  # each function's runtime starts only with the webhook secrets (container.py)
        assert len(allowed(policy_of(template, role), "secretsmanager:GetSecretValue")) == 1


def test_the_github_sync_reads_and_writes_its_items_and_appends_to_the_inbox_only(template: Template) -> None:
    statements = policy_of(template, "github_sync")
    table, _ = one(template, "AWS::DynamoDB::Table")
    topics = resources(template, "AWS::SNS::Topic")
    deliveries = ref(next(n for n in topics if n.startswith("Deliveries")))
    actions = {a for s in statements for a in as_list(s["Action"])}
    # gaps, scans, tracked repositories and leases (get, batch get, query, put, delete); the hooks that delivered
    # each delivery (batch get); a polled release's delivery and body items (TransactWriteItems of two puts)
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem"
    }  # fmt: skip
    indexes = {"Fn::Join": ["", [arn_of(table), "/index/*"]]}
    assert allowed(statements, "dynamodb:Query") == [arn_of(table), indexes]
    assert allowed(statements, "dynamodb:PutItem") == allowed(statements, "dynamodb:DeleteItem") == [arn_of(table)]
    assert allowed(statements, "sns:Publish") == [deliveries]  # the inbox's notice; never a forward job's
    assert {a for a in actions if a.startswith("s3:")} == {"s3:PutObject"}  # a large polled body
    assert not any(a.startswith("sqs:") for a in actions)
    assert len(allowed(statements, "secretsmanager:GetSecretValue")) == 1


# The template as a whole --------------------------------------------------------------------------------------


def test_cfn_lint_finds_no_error(synthesized: Synthesized) -> None:
    from cfnlint.api import lint_file

    matches = lint_file(synthesized.path)
    unexpected = [
        f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches if m.rule.id not in ALLOWED_LINT_WARNINGS
    ]
    assert not unexpected, "\n".join(unexpected)


def test_the_source_only_asset_holds_ghingest_and_the_routes_and_warns(synthesized: Synthesized) -> None:
    from aws_cdk.assertions import Annotations, Match

    keys = {p["Code"]["S3Key"] for _, p in functions(synthesized.template).values()}
    (key,) = keys  # one asset for the six functions: {hash}.zip, staged as asset.{hash}
    asset = synthesized.path.parent / f"asset.{key.removesuffix('.zip')}"
    assert sorted(p.name for p in asset.iterdir()) == ["ghingest", "routes.toml"]
    assert (asset / "routes.toml").read_text(encoding="utf-8") == ROUTES
    assert not list(asset.rglob("__pycache__"))
    Annotations.from_stack(synthesized.stack).has_warning("/GhingestStack", Match.string_like_regexp(".*bundle\\.py.*"))


def test_bundle_targets_the_functions_platform(node: None) -> None:
    sys.path.insert(0, str(DEPLOY_AWS))
    import bundle
    from ghingest_cdk import sizing

    assert bundle.PIP_PLATFORM == sizing.PIP_PLATFORM
    assert sizing.ARCHITECTURE.name == "arm64"
    assert bundle.PIP_PLATFORM.endswith("aarch64")
    assert sizing.RUNTIME.name == f"python{bundle.PYTHON_VERSION}"


# Without node, and the context rules --------------------------------------------------------------------------


def test_the_app_says_in_one_line_that_node_is_needed() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHINGEST_")} | {"JSII_NODE": "/nonexistent/node"}
    done = subprocess.run(
        [sys.executable, str(DEPLOY_AWS / "app.py")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip() == NODE_MISSING
    assert "\n" not in NODE_MISSING


def test_a_filter_policy_stays_within_the_sns_limit() -> None:
    many = DestinationSpec("ci", events=tuple(f"e{i}" for i in range(20)), actions=tuple(f"a{i}" for i in range(10)))
    assert many.filter_policy() == {"destination": ["ci"], "event": [f"e{i}" for i in range(20)]}
    huge = DestinationSpec("ci", events=tuple(f"e{i}" for i in range(MAX_FILTER_COMBINATIONS + 1)))
    assert huge.filter_policy() == {"destination": ["ci"]}
    assert DestinationSpec("ci").filter_policy() == {"destination": ["ci"]}


def test_destinations_from_a_list_and_bad_context(tmp_path: Path) -> None:
    config = config_from_context({"destinations": "ci, chat", "buildDir": str(tmp_path)}, base=tmp_path)
    assert [d.name for d in config.destinations] == ["ci", "chat"]
    assert config.lambda_bundle is None
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES, encoding="utf-8")
    cases = [
        ({"destinations": "ci,ci"}, "listed twice"),
        ({"destinations": "c i"}, "not a destination name"),
        ({"destinations": "ci", "routesFile": str(routes)}, "not both"),
        ({"routesFile": str(tmp_path / "missing.toml")}, "cannot read"),
        ({"lambdaBundle": str(tmp_path)}, "holds no ghingest package"),
    ]
    for context, message in cases:
        with pytest.raises(ConfigError, match=message):
            config_from_context(context, base=tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[routes]]\nname = "r"\ndestinations = ["nowhere"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"routesFile.*no destination is named 'nowhere'"):
        config_from_context({"routesFile": str(bad)}, base=tmp_path)
