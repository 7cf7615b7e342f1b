"""What holds data at rest: the stack's KMS key, the one DynamoDB table, the payload bucket and the secret.

The table's keys and indexes are `ghingest.adapters.aws.schema`'s, the description the adapters and the local
provisioner use too, so the deployed table cannot drift from the code that reads it. Everything is encrypted with
one customer-managed key (rotated yearly) and kept when the stack is deleted: deliveries are the system's record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Aws, Fn, RemovalPolicy, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from ghingest.adapters.aws import schema

from .parameters import Parameters

SECRET_TEMPLATE: dict[str, list[str]] = {"webhook_secrets": [], "api_tokens": []}  # values: README
SESSION_SECRET_KEY = "session_secret"  # noqa: S105 (the JSON key the value is generated under)


@dataclass(frozen=True, slots=True)
class Storage:
    key: kms.Key
    table: dynamodb.Table
    bucket: s3.Bucket
    secret_arn: str  # the created secret's, or the ExistingSecretArn parameter's (a token)


def _key(scope: Construct) -> kms.Key:
    key = kms.Key(
        scope,
        "Key",
        description="ghingest: encrypts the table, payload bucket, topics, queues, logs and secret",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    # Services that encrypt on their own behalf, not a function's: CloudWatch Logs for the log groups,
    # CloudWatch alarms publishing to the encrypted alarm topic. (SNS → SQS is granted by the subscriptions.)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogs",
            principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
            actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            resources=["*"],  # a key policy's resource is the key itself
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                    )
                }
            },
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarms",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # as AWS documents it: the alarm's publish reaches KMS through SNS
        )
    )
    return key


def _table(scope: Construct, key: kms.Key) -> dynamodb.Table:
    string = dynamodb.AttributeType.STRING
    table = dynamodb.Table(
        scope,
        "Table",
        partition_key=dynamodb.Attribute(name=schema.PARTITION_KEY, type=string),
        sort_key=dynamodb.Attribute(name=schema.SORT_KEY, type=string),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=key,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=schema.TTL_ATTRIBUTE,
        deletion_protection=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    for index in schema.INDEXES:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=dynamodb.Attribute(name=index.partition_key, type=string),
            sort_key=dynamodb.Attribute(name=index.sort_key, type=string),
            projection_type=dynamodb.ProjectionType.ALL,
        )
    return table


def _bucket(scope: Construct, key: kms.Key, parameters: Parameters) -> s3.Bucket:
    """The claim check: bodies too large for a DynamoDB item. Expiry is a parameter, so the lifecycle rule is
    the whole configuration under `HasPayloadRetention` (no rule at all when it is 0: nothing expires)."""
    bucket = s3.Bucket(
        scope,
        "PayloadBucket",
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,  # one KMS request per bucket key, not per object
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=False,
        removal_policy=RemovalPolicy.RETAIN,
    )
    cfn_bucket = bucket.node.default_child
    assert isinstance(cfn_bucket, s3.CfnBucket)
    cfn_bucket.lifecycle_configuration = Fn.condition_if(
        parameters.has_payload_retention.logical_id,
        {
            "Rules": [
                {
                    "Id": "ExpireRawPayloads",
                    "Status": "Enabled",
                    "ExpirationInDays": parameters.payload_retention_days.value_as_number,
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
        Aws.NO_VALUE,
    )
    return bucket


def _secret_arn(scope: Construct, key: kms.Key, parameters: Parameters) -> str:
    """A new secret with a generated session secret (under `CreatesSecret`), or the operator's existing one."""
    secret = secretsmanager.Secret(
        scope,
        "Secrets",
        description="ghingest: webhook secrets, API tokens and the session secret (JSON)",
        encryption_key=key,
        generate_secret_string=secretsmanager.SecretStringGenerator(
            secret_string_template=json.dumps(SECRET_TEMPLATE),
            generate_string_key=SESSION_SECRET_KEY,
            password_length=64,
            exclude_punctuation=True,
        ),
        removal_policy=RemovalPolicy.RETAIN,
    )
    cfn_secret = secret.node.default_child
    assert isinstance(cfn_secret, secretsmanager.CfnSecret)
    cfn_secret.cfn_options.condition = parameters.creates_secret
    return Token.as_string(
        Fn.condition_if(
            parameters.creates_secret.logical_id, secret.secret_arn, parameters.existing_secret_arn.value_as_string
        )
    )


def define_storage(scope: Construct, parameters: Parameters) -> Storage:
    key = _key(scope)
    return Storage(
        key=key,
        table=_table(scope, key),
        bucket=_bucket(scope, key, parameters),
        secret_arn=_secret_arn(scope, key, parameters),
    )
