"""The stack's CloudFormation parameters: what an operator chooses at deploy time, without a new synth.

Values that other values are derived from at synth time (timeouts → visibility timeouts, the destinations → queues)
are constants or CDK context instead: a parameter is a token, and arithmetic on tokens is not possible offline.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnCondition, CfnParameter, Fn
from constructs import Construct


@dataclass(frozen=True, slots=True)
class Parameters:
    log_level: CfnParameter
    payload_retention_days: CfnParameter
    has_payload_retention: CfnCondition
    existing_secret_arn: CfnParameter
    creates_secret: CfnCondition
    alarm_email: CfnParameter
    has_alarm_email: CfnCondition
    throttle_rate_limit: CfnParameter
    throttle_burst_limit: CfnParameter
    # The GitHub sync function (reconciliation, release tracking): its settings and its schedule.
    reconcile_hooks: CfnParameter
    track_repositories: CfnParameter
    github_api_url: CfnParameter
    github_app_id: CfnParameter
    has_github_app_id: CfnCondition
    github_sync_minutes: CfnParameter


def define_parameters(scope: Construct) -> Parameters:
    log_level = CfnParameter(
        scope,
        "LogLevel",
        type="String",
        default="info",
        allowed_values=["debug", "info", "warning", "error"],
        description="GHINGEST_LOG_LEVEL of every function.",
    )
    retention = CfnParameter(
        scope,
        "PayloadRetentionDays",
        type="Number",
        default=0,
        min_value=0,
        max_value=36500,
        description=(
            "Days after which raw payload bodies expire (their table items by TTL, large ones in the payload bucket"
            " by a lifecycle rule); the deliveries' records stay. 0 keeps them."
        ),
    )
    has_retention = CfnCondition(
        scope, "HasPayloadRetention", expression=Fn.condition_not(Fn.condition_equals(retention.value_as_string, "0"))
    )
    secret_arn = CfnParameter(
        scope,
        "ExistingSecretArn",
        type="String",
        default="",
        allowed_pattern=r"^$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$",
        description=(
            "The complete ARN of an existing Secrets Manager secret holding "
            '{"webhook_secrets": [...], "api_tokens": [...], "session_secret": "..."}; empty: the stack creates one.'
        ),
    )
    creates_secret = CfnCondition(
        scope, "CreatesSecret", expression=Fn.condition_equals(secret_arn.value_as_string, "")
    )
    alarm_email = CfnParameter(
        scope,
        "AlarmEmail",
        type="String",
        default="",
        description="An e-mail address subscribed to the alarm topic (it must confirm); empty: none.",
    )
    has_email = CfnCondition(
        scope, "HasAlarmEmail", expression=Fn.condition_not(Fn.condition_equals(alarm_email.value_as_string, ""))
    )
    rate = CfnParameter(
        scope,
        "ThrottleRateLimit",
        type="Number",
        default=100,
        min_value=1,
        description="Requests per second the HTTP API's stage admits (above: 429; GitHub does not retry by itself).",
    )
    burst = CfnParameter(
        scope,
        "ThrottleBurstLimit",
        type="Number",
        default=200,
        min_value=1,
        description="Requests the HTTP API's stage admits in a burst above the rate.",
    )
    hooks = CfnParameter(
        scope,
        "ReconcileHooks",
        type="String",
        default="",
        description=(
            "GHINGEST_RECONCILE_HOOKS: comma-separated hooks whose deliveries the GitHub sync reconciles"
            " (repo:OWNER/REPO:HOOK_ID, org:ORG:HOOK_ID, app or app:HOOK_ID); empty: no reconciliation."
        ),
    )
    repositories = CfnParameter(
        scope,
        "TrackRepositories",
        type="String",
        default="",
        description="GHINGEST_TRACK_REPOSITORIES: comma-separated OWNER/REPO whose releases the GitHub sync polls.",
    )
    api_url = CfnParameter(
        scope,
        "GitHubApiUrl",
        type="String",
        default="https://api.github.com",
        allowed_pattern=r"^https?://[^\s?#]+$",
        description="GHINGEST_GITHUB_API_URL: GitHub's REST API (https://HOST/api/v3 for GitHub Enterprise Server).",
    )
    app_id = CfnParameter(
        scope,
        "GitHubAppId",
        type="String",
        default="",
        allowed_pattern=r"^$|^[0-9]{1,20}$",
        description=(
            "GHINGEST_GITHUB_APP_ID: authenticate the GitHub sync as this GitHub App (its PEM key in the secret's"
            " github_app_private_key); empty: the secret's github_token, or none (public data only)."
        ),
    )
    has_app_id = CfnCondition(
        scope, "HasGitHubAppId", expression=Fn.condition_not(Fn.condition_equals(app_id.value_as_string, ""))
    )
    sync_minutes = CfnParameter(
        scope,
        "GitHubSyncMinutes",
        type="Number",
        default=5,
        min_value=5,  # the function's timeout is below 5 minutes: one run ends before the next starts
        max_value=1440,
        description="Minutes between two runs of the GitHub sync function (reconciliation and release polling).",
    )
    return Parameters(
        log_level=log_level,
        payload_retention_days=retention,
        has_payload_retention=has_retention,
        existing_secret_arn=secret_arn,
        creates_secret=creates_secret,
        alarm_email=alarm_email,
        has_alarm_email=has_email,
        throttle_rate_limit=rate,
        throttle_burst_limit=burst,
        reconcile_hooks=hooks,
        track_repositories=repositories,
        github_api_url=api_url,
        github_app_id=app_id,
        has_github_app_id=has_app_id,
        github_sync_minutes=sync_minutes,
    )
