"""`GhingestStack`: the AWS serverless profile in one stack (deploy/aws/README.md draws it; ADR 0016 says why).

The stack is environment-agnostic (no account or region at synth time) and looks nothing up, so `app.py`
synthesizes it offline; what differs between deployments is either a CloudFormation parameter (`parameters.py`)
or CDK context read into a `StackConfig` (`config.py`).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Annotations, CfnOutput, Stack, Validations
from constructs import Construct

from .alarms import define_alarms
from .config import StackConfig
from .functions import define_functions
from .http_api import define_http_api
from .lambda_code import lambda_code
from .messaging import define_messaging
from .parameters import define_parameters
from .storage import define_storage

SOURCE_ONLY_WARNING = (
    "The code asset is ghingest's source alone (no deploy/aws/build/lambda): the functions cannot import their "
    "dependencies. Run `python deploy/aws/bundle.py` before deploying."
)

# Findings of CDK's own template validation (CloudFormationValidatePlugin) that are not problems, each with why.
ACKNOWLEDGED = {
    "W1001": "SecretsArn is Fn::If on CreatesSecret, the condition of the secret it references",
    "W2509": "ExistingSecretArn is the ARN of a secret, not a secret value: nothing to hide",
}


class GhingestStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.template_options.description = "ghingest: GitHub webhook ingester, AWS serverless profile (ADR 0016)"
        parameters = define_parameters(self)
        storage = define_storage(self, parameters)
        messaging = define_messaging(self, storage.key, config.destinations)
        code = lambda_code(config)
        if code.source_only:
            Annotations.of(self).add_warning_v2("ghingest:sourceOnlyAsset", SOURCE_ONLY_WARNING)
        functions = define_functions(self, storage, messaging, parameters, code)
        http = define_http_api(
            self, receiver=functions.receiver, dashboard=functions.dashboard, parameters=parameters, key=storage.key
        )
        define_alarms(self, messaging, functions.all(), parameters)
        self.functions = functions
        self.messaging = messaging
        self.storage = storage
        CfnOutput(self, "WebhookUrl", value=http.webhook_url, description="GitHub's Payload URL for the webhook")
        CfnOutput(self, "DashboardUrl", value=http.dashboard_url, description="The dashboard and the read API")
        CfnOutput(self, "SecretsArn", value=storage.secret_arn, description="Put the webhook secrets here (README)")
        CfnOutput(self, "AlarmTopicArn", value=messaging.alarm_topic.topic_arn)
        Validations.of(self).acknowledge(
            *(Acknowledgment(id=f"CloudFormation-Validate::{rule}", reason=why) for rule, why in ACKNOWLEDGED.items())
        )
