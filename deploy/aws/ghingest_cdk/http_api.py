"""The HTTP API in front of the receiver and the dashboard: two routes, one throttled `$default` stage.

`POST /webhooks/github` goes to the receiver; every other request (`$default`) to the dashboard function, the same
ASGI application (read API and dashboard) through Mangum. Both integrations use payload format 2.0. The stage
writes an access log, the one place a request refused before any function ran (413 over 10 MB, 429 when
throttled) can be seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from . import sizing
from .parameters import Parameters

WEBHOOK_PATH = "/webhooks/github"
_ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "status": "$context.status",
    "length": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationError": "$context.integrationErrorMessage",
    "error": "$context.error.message",
    "sourceIp": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
}


@dataclass(frozen=True, slots=True)
class HttpApi:
    api: apigw.HttpApi
    webhook_url: str
    dashboard_url: str


def define_http_api(
    scope: Construct,
    *,
    receiver: lambda_.IFunction,
    dashboard: lambda_.IFunction,
    parameters: Parameters,
    key: kms.IKey,
) -> HttpApi:
    version = apigw.PayloadFormatVersion.VERSION_2_0
    api = apigw.HttpApi(
        scope,
        "HttpApi",
        description="ghingest: GitHub webhooks, read API and dashboard",
        create_default_stage=False,
        default_integration=integrations.HttpLambdaIntegration(
            "DashboardIntegration", dashboard, payload_format_version=version
        ),
    )
    api.add_routes(
        path=WEBHOOK_PATH,
        methods=[apigw.HttpMethod.POST],
        integration=integrations.HttpLambdaIntegration("ReceiverIntegration", receiver, payload_format_version=version),
    )
    stage = apigw.HttpStage(
        scope,
        "DefaultStage",
        http_api=api,
        stage_name="$default",
        auto_deploy=True,
        throttle=apigw.ThrottleSettings(
            rate_limit=parameters.throttle_rate_limit.value_as_number,
            burst_limit=parameters.throttle_burst_limit.value_as_number,
        ),
    )
    access_logs = logs.LogGroup(scope, "HttpApiAccessLogs", retention=sizing.LOG_RETENTION, encryption_key=key)
    cfn_stage = stage.node.default_child
    assert isinstance(cfn_stage, apigw.CfnStage)
    cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
        destination_arn=access_logs.log_group_arn, format=json.dumps(_ACCESS_LOG_FORMAT)
    )
    endpoint = api.api_endpoint  # https://{api id}.execute-api.{region}.amazonaws.com: the $default stage's URL
    return HttpApi(api=api, webhook_url=f"{endpoint}{WEBHOOK_PATH}", dashboard_url=f"{endpoint}/")
