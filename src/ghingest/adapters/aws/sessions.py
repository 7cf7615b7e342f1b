"""Signed-out dashboard sessions on DynamoDB: one `SESSION#<id>` item each, until when it is refused.

Revoking again keeps the later end (a conditional update: only a later `until` is written), and the item's TTL
(`expires_at`, the revocation's end) purges it once it ran out; DynamoDB deletes expired items within days, so
`is_revoked` compares `until` with the clock itself (one strongly consistent `GetItem`).
"""

from __future__ import annotations

import math

from ghingest.adapters.aws import keys, schema
from ghingest.adapters.aws.clients import is_error
from ghingest.adapters.aws.table import TableContext, get, key, values


class AwsSessionRevocations:
    def __init__(self, db: TableContext) -> None:
        self._db = db

    async def revoke(self, session_id: str, until: float) -> None:
        await self._db.run("sessions.revoke", self._revoke, session_id, until)

    async def is_revoked(self, session_id: str) -> bool:
        return await self._db.run("sessions.is_revoked", self._is_revoked, session_id)

    def _revoke(self, session_id: str, until: float) -> None:
        try:
            self._db.clients.dynamodb.update_item(
                TableName=self._db.table,
                Key=key(keys.session(session_id)),
                UpdateExpression="SET #until = :until, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(pk) OR #until < :until",
                ExpressionAttributeNames={"#until": "until", "#ttl": schema.TTL_ATTRIBUTE},
                ExpressionAttributeValues=values(until=until, ttl=math.ceil(until)),
            )
        except Exception as exc:
            if not is_error(exc, "ConditionalCheckFailedException"):
                raise  # a later end is kept already: nothing to do

    def _is_revoked(self, session_id: str) -> bool:
        revoked = get(self._db, keys.session(session_id))
        return revoked is not None and float(revoked["until"]) > self._db.clock.now()
