"""The AWS profile's resources as data: the one description that the CDK app (`deploy/aws/`), the test and local
provisioner (`ghingest.adapters.aws.provision`) and the adapters share. docs/aws/dynamodb.md explains every key.

One DynamoDB table (single-table design) with three generic global secondary indexes, all projecting every
attribute; a TTL attribute for what may expire (revoked sessions, raw payloads when a retention is configured).
"""

from __future__ import annotations

from dataclasses import dataclass

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    partition_key: str
    sort_key: str


INDEXES: tuple[Index, ...] = (
    Index("gsi1", "gsi1pk", "gsi1sk"),
    Index("gsi2", "gsi2pk", "gsi2sk"),
    Index("gsi3", "gsi3pk", "gsi3sk"),
)

# Every key attribute is a string (numbers inside keys are zero-padded so that they sort).
KEY_ATTRIBUTES: tuple[str, ...] = (
    PARTITION_KEY,
    SORT_KEY,
    *(name for index in INDEXES for name in (index.partition_key, index.sort_key)),
)

# Message attributes the receiver sets on every SNS publish of a delivery notice (subscription filter policies
# match them), and those of a forward-job notice.
DELIVERY_NOTICE_ATTRIBUTES: tuple[str, ...] = ("event", "action", "repository")
FORWARD_NOTICE_ATTRIBUTES: tuple[str, ...] = ("destination", "event", "action", "repository")
