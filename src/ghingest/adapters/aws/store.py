"""The store's write side on DynamoDB: a batch of outcomes in `TransactWriteItems`, safe against concurrent
processors by optimistic conditions (docs/aws/dynamodb.md, "Transactions and limits").

A batch is split into transactions of whole outcomes (at most 100 items each; a delivery recorded twice in one
batch goes to the next one: a transaction may not touch an item twice). Each transaction is planned from a fresh
read and written on the conditions that what it read has not moved:

- **Releases.** Each release's item and its `CHG#` change items are read; the batch's changes fold into them in
  memory exactly as the memory store folds (`core.releases.record_change`; a delivery recorded again replaces its
  change and the record is rebuilt from all of its changes); a release is written once, on the condition that its
  `version` is the one read. One whose record did not change gets no feed entry and keeps its `updated_at` (and a
  condition check on its version, so that the fold was against the newest record). The change items are those of
  the history (docs/adr/0019-release-sources.md): a covered poll change puts none, and one that a webhook change
  covers is deleted, and its delivery no longer names the release (as the SQL stores' join shows it).
- **The change feed.** The entries go after the head read, which moves on the condition that it is still there:
  transactions that touch the feed commit one after another, so positions are never committed out of order.
- **Forward jobs** (the outbox): the original jobs of the processed outcomes' targets that have no guard yet,
  created by a `JobWriter` (`jobs.AwsJobs`) in the same transaction, and dispatched (their notices published)
  after the commit.

A transaction cancelled on a condition (or a conflict with another transaction) is planned again from a new read,
a bounded number of times with a jittered pause; any other failure is `StoreUnavailable`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.clients import is_error
from ghingest.adapters.aws.feed import feed_writes, read_head
from ghingest.adapters.aws.items import (
    StoredRelease,
    body_digest,
    change_item,
    event_item,
    release_change,
    release_item,
    sighted_hook,
    stored_release,
)
from ghingest.adapters.aws.table import (
    Item,
    TableContext,
    batch_get,
    from_item,
    key,
    query,
    to_item,
    value,
    values,
)
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.errors import StoreUnavailable
from ghingest.core.events import EventRecord
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import ReleaseChange, ReleaseRecord, record_change
from ghingest.core.routing import ForwardTarget
from ghingest.core.states import DeliveryStatus
from ghingest.ports import Outcome, StoreCapabilities

log = structlog.get_logger("ghingest.aws.store")

MAX_ITEMS = 100  # TransactWriteItems' limit
_TRIES = 8  # plans of one transaction before its contention is StoreUnavailable
_PAUSE = 0.02  # seconds: the first retry's mean pause (doubling)
_RETRIED = ("ConditionalCheckFailed", "TransactionConflict")


class JobWriter(Protocol):
    """How the store creates forward jobs in its transactions (`jobs.AwsJobs` implements it): the guards to read,
    the entries that create the jobs without one, the counts once per transaction, the dispatch after it."""

    def guard_keys(self, delivery_id: str, targets: Sequence[ForwardTarget]) -> list[dict[str, str]]:
        """The keys (`keys`' plain dicts) of the original-job guards of `targets` to read first."""
        ...

    def guarded_destinations(self, items: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
        """(delivery id, destination) of the guards that exist, from the items (plain values) read."""
        ...

    def jobs_needed(self, delivery_id: str, targets: Sequence[ForwardTarget], guarded: set[tuple[str, str]]) -> int: ...

    def reserve_ids(self, count: int) -> range: ...

    def writes(
        self,
        delivery: StoredDelivery,
        targets: Sequence[ForwardTarget],
        guarded: set[tuple[str, str]],
        job_ids: Iterator[int],
        now: float,
        record: EventRecord | None,
    ) -> list[Item]: ...

    def count_updates(self, entries: Sequence[Item]) -> list[Item]: ...

    def job_ids_in(self, entries: Sequence[Item]) -> list[int]: ...

    async def dispatch(self, job_ids: Sequence[int]) -> None: ...


@dataclass
class _Release:
    """A release as a transaction read it, and what the transaction's changes fold it into."""

    release_id: int
    stored: StoredRelease | None
    changes: dict[str, ReleaseChange]  # its history's changes (`CHG#` items): as read, then as the changes leave it
    record: ReleaseRecord | None = None
    first_seen_at: float = 0.0
    changed: bool = False  # its item is written
    updated: bool = False  # its record changed (`updated_at`)
    read: frozenset[str] = frozenset()  # the change items read
    recorded: set[str] = field(default_factory=set)  # the changes the transaction recorded

    def __post_init__(self) -> None:
        self.read = frozenset(self.changes)

    def apply(self, change: ReleaseChange) -> bool:
        """Record `change`, as the memory store does; whether the record changed (a feed entry)."""
        recorded = record_change(self.record, self.changes, change)
        self.changes = dict(recorded.changes)
        self.recorded.add(change.delivery_id)
        first_seen_at = change.received_at if self.record is None else min(self.first_seen_at, change.received_at)
        if self.record is not None and self.record == recorded.record:
            if first_seen_at != self.first_seen_at:  # when it was first seen is no change of the release
                self.first_seen_at, self.changed = first_seen_at, True
            return False
        self.record, self.first_seen_at, self.changed, self.updated = recorded.record, first_seen_at, True, True
        return True

    def of_release(self, delivery_id: str) -> bool:
        """Whether the delivery's change is one of the history (its delivery names the release)."""
        return delivery_id in self.changes

    def change_writes(self, table: str) -> Iterator[Item]:
        """The recorded changes of the history put, the change items no longer of it deleted."""
        for delivery_id in sorted(self.recorded & self.changes.keys()):
            yield {"Put": {"TableName": table, "Item": change_item(self.changes[delivery_id])}}
        for delivery_id in sorted(self.read - self.changes.keys()):
            yield {"Delete": {"TableName": table, "Key": key(keys.release_change(self.release_id, delivery_id))}}

    def taken_out(self) -> list[str]:
        """The deliveries whose stored changes the transaction took out of the history, other than its own."""
        return sorted(self.read - self.changes.keys() - self.recorded)


@dataclass
class _Plan:
    entries: list[Item] = field(default_factory=list)
    deliveries: list[int | None] = field(default_factory=list)  # per entry: the outcome whose delivery it updates
    job_ids: list[int] = field(default_factory=list)


def _targets(outcome: Outcome) -> tuple[ForwardTarget, ...]:
    return outcome.processed.forwards if outcome.processed is not None else ()


def _estimate(outcome: Outcome) -> int:
    """Items an outcome may add to a transaction: delivery, event, release change, release, repository, three feed
    entries (event, release, forward), and per target a job, its guard and its destination's counts."""
    return 8 + 3 * len(_targets(outcome))


def chunks(outcomes: Sequence[Outcome]) -> Iterator[list[Outcome]]:
    """The batch as transactions of whole outcomes, in order: within the item limit (the feed head counted), one
    outcome per delivery each."""
    chunk: list[Outcome] = []
    size = 1
    for outcome in outcomes:
        cost = _estimate(outcome)
        ids = {o.delivery.delivery_id for o in chunk}
        if chunk and (size + cost > MAX_ITEMS or outcome.delivery.delivery_id in ids):
            yield chunk
            chunk, size = [], 1
        chunk.append(outcome)
        size += cost
    if chunk:
        yield chunk


class AwsStore:
    capabilities = StoreCapabilities(foreign_inbox=False)  # the inbox is this table's own delivery items

    def __init__(self, db: TableContext, jobs: JobWriter) -> None:
        self._db = db
        self._jobs = jobs

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        created = await self._db.run("store.record_outcomes", self._record, outcomes)
        await self._jobs.dispatch(created)

    async def record_sighting(self, delivery: IncomingDelivery, *, received_at: float) -> None:
        await self._db.run("store.record_sighting", self._sighting, delivery, received_at)

    async def ping(self) -> None:
        await self._db.run("store.ping", self._ping)

    # --- recording outcomes (blocking, on a thread) ---------------------------------------------------------------

    def _record(self, outcomes: Sequence[Outcome]) -> list[int]:
        created: list[int] = []
        for chunk in chunks(outcomes):
            created += self._commit(chunk)
        return created

    def _commit(self, chunk: list[Outcome]) -> list[int]:
        """Plan and write one transaction; plan again while another transaction moved what it read."""
        for attempt in range(_TRIES):
            if not chunk:
                return []
            plan = self._plan(chunk)
            if len(plan.entries) > MAX_ITEMS and len(chunk) > 1:  # poll changes taken out took it past the limit
                half = len(chunk) // 2
                return self._commit(chunk[:half]) + self._commit(chunk[half:])
            try:
                self._db.clients.dynamodb.transact_write_items(TransactItems=plan.entries)
                return plan.job_ids
            except Exception as exc:
                if not is_error(exc, "TransactionCanceledException"):
                    raise
                reasons = [r.get("Code") for r in getattr(exc, "response", {}).get("CancellationReasons", [])]
                if not any(code in _RETRIED for code in reasons):
                    raise
                unknown = {
                    index
                    for index, code in zip(plan.deliveries, reasons, strict=False)
                    if index is not None and code == "ConditionalCheckFailed"
                }
                for index in unknown:  # an outcome of a delivery this table does not hold: nothing to record
                    log.warning("outcome.unknown_delivery", delivery_id=chunk[index].delivery.delivery_id)
                chunk = [o for i, o in enumerate(chunk) if i not in unknown]
                time.sleep(random.uniform(0, _PAUSE * 2**attempt))  # noqa: S311 - a pause, not a secret
        raise StoreUnavailable("store.record_outcomes: the feed head or a release kept moving (contention)")

    def _plan(self, chunk: Sequence[Outcome]) -> _Plan:
        now = self._db.clock.now()
        table = self._db.table
        releases = self._read_releases(chunk)
        guarded = self._read_guards(chunk)
        head = read_head(self._db)
        plan = _Plan()
        feed: list[tuple[str, str]] = []
        jobs: list[Item] = []
        job_ids = iter(self._jobs.reserve_ids(sum(self._jobs_needed(o, guarded) for o in chunk)))
        # Releases first: whether a delivery still names its release is known once all of the chunk is recorded.
        changed = [False] * len(chunk)  # per outcome: its change changed its release (a feed entry)
        for index, outcome in enumerate(chunk):
            if outcome.processed is not None and outcome.processed.release is not None:
                changed[index] = releases[outcome.processed.release.release_id].apply(outcome.processed.release)
        for index, outcome in enumerate(chunk):
            d, processed = outcome.delivery, outcome.processed
            change = processed.release if processed is not None else None
            of_release = change is not None and releases[change.release_id].of_release(d.delivery_id)
            self._add(plan, self._delivery_update(outcome, now, of_release=of_release), index)
            record = processed.event if processed is not None else outcome.fallback_event
            if processed is None and outcome.retry_at is not None:
                record = None  # a retry records no event (it keeps the delivery's status)
            if record is not None:
                status = DeliveryStatus.PROCESSED if processed is not None else DeliveryStatus.FAILED
                error = None if processed is not None else outcome.error
                self._add(plan, {"Put": {"TableName": table, "Item": event_item(d, record, status, error, now)}})
                feed.append(("event", d.delivery_id))
            if change is not None and changed[index]:
                feed.append(("release", str(change.release_id)))
            if processed is not None and processed.forwards:
                feed.append(("forward", d.delivery_id))
                jobs += self._jobs.writes(d, processed.forwards, guarded, job_ids, now, processed.event)
        for entry in self._release_writes(releases, now, {o.delivery.delivery_id for o in chunk}):
            self._add(plan, entry)
        for entry in (*jobs, *self._jobs.count_updates(jobs)):
            self._add(plan, entry)
        for entry in feed_writes(table, head, feed, now):
            self._add(plan, entry)
        plan.job_ids = self._jobs.job_ids_in(jobs)
        return plan

    @staticmethod
    def _add(plan: _Plan, entry: Item, delivery_of: int | None = None) -> None:
        plan.entries.append(entry)
        plan.deliveries.append(delivery_of)

    def _jobs_needed(self, outcome: Outcome, guarded: set[tuple[str, str]]) -> int:
        targets = _targets(outcome)
        return self._jobs.jobs_needed(outcome.delivery.delivery_id, targets, guarded) if targets else 0

    def _read_releases(self, chunk: Sequence[Outcome]) -> dict[int, _Release]:
        """Each release the chunk changes, with its change items (strongly consistent)."""
        ids = {o.processed.release.release_id for o in chunk if o.processed is not None and o.processed.release}
        releases = {}
        for release_id in sorted(ids):
            stored: StoredRelease | None = None
            changes: dict[str, ReleaseChange] = {}
            for attrs in query(
                self._db,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=values(pk=keys.release_pk(release_id)),
                ConsistentRead=True,
            ):
                if attrs["sk"] == keys.RELEASE_SK:
                    stored = stored_release(attrs)
                else:
                    changes[str(attrs["delivery_id"])] = release_change(attrs)
            release = _Release(release_id, stored, changes)
            if stored is not None:
                release.record, release.first_seen_at = stored.record, stored.first_seen_at
            releases[release_id] = release
        return releases

    def _read_guards(self, chunk: Sequence[Outcome]) -> set[tuple[str, str]]:
        guard_keys = [
            k for o in chunk if (targets := _targets(o)) for k in self._jobs.guard_keys(o.delivery.delivery_id, targets)
        ]
        return self._jobs.guarded_destinations(batch_get(self._db, guard_keys)) if guard_keys else set()

    def _delivery_update(self, outcome: Outcome, now: float, *, of_release: bool) -> Item:
        """The delivery item's state as the read side shows it; the unpublished marker goes (it was published).
        `of_release`: its change is one of its release's history (a covered poll change is not)."""
        d, processed = outcome.delivery, outcome.processed
        assignments: dict[str, Any] = {"attempts": d.attempts + 1}
        removed = ["gsi3pk", "gsi3sk"]
        if processed is not None:
            assignments |= {"#status": DeliveryStatus.PROCESSED.value, "processed_at": now}
            if processed.release is not None and of_release:
                assignments["release_id"] = processed.release.release_id
            elif processed.release is not None:
                removed.append("release_id")
            removed.append("#error")
        else:
            if outcome.retry_at is None:
                assignments |= {"#status": DeliveryStatus.FAILED.value, "processed_at": now}
            if outcome.error is None:
                removed.append("#error")
            else:
                assignments["#error"] = outcome.error
        placeholders = {name: f":v{i}" for i, name in enumerate(assignments)}
        update = "SET " + ", ".join(f"{name} = {placeholders[name]}" for name in assignments)
        used = {"#status": "status", "#error": "error"}
        names = {n: v for n, v in used.items() if n in assignments or n in removed}
        return {
            "Update": {
                "TableName": self._db.table,
                "Key": key(keys.delivery(d.delivery_id)),
                "UpdateExpression": f"{update} REMOVE {', '.join(removed)}",
                "ConditionExpression": "attribute_exists(pk)",
                **({"ExpressionAttributeNames": names} if names else {}),
                "ExpressionAttributeValues": {placeholders[n]: value(v) for n, v in assignments.items()},
            }
        }

    def _release_writes(self, releases: Mapping[int, _Release], now: float, chunk: set[str]) -> Iterator[Item]:
        """Each changed release once, on the condition of the version read; a condition check for each other. With
        each, its change items, and the deliveries (not of the `chunk`: their own update says it) that no longer
        name it."""
        table = self._db.table
        repositories: set[str] = set()
        for release_id, release in sorted(releases.items()):
            stored = release.stored
            version = 0 if stored is None else stored.version
            condition: dict[str, Any] = (
                {"ConditionExpression": "attribute_not_exists(pk)"}
                if stored is None
                else {"ConditionExpression": "version = :version", "ExpressionAttributeValues": values(version=version)}
            )
            yield from release.change_writes(table)
            for delivery_id in (d for d in release.taken_out() if d not in chunk):
                yield {
                    "Update": {
                        "TableName": table,
                        "Key": key(keys.delivery(delivery_id)),
                        "UpdateExpression": "REMOVE release_id",
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
            if not release.changed or release.record is None:
                yield {"ConditionCheck": {"TableName": table, "Key": key(keys.release(release_id)), **condition}}
                continue
            updated_at = now if release.updated or stored is None else stored.updated_at
            item = release_item(
                release.record, first_seen_at=release.first_seen_at, updated_at=updated_at, version=version + 1
            )
            yield {"Put": {"TableName": table, "Item": item, **condition}}
            repository = release.record.content.repository
            if repository is not None and (stored is None or stored.record.content.repository != repository):
                repositories.add(repository)
        for repository in sorted(repositories):  # the typeahead's names
            yield {"Put": {"TableName": table, "Item": to_item({"pk": keys.REPOSITORIES, "sk": repository})}}

    # --- sightings and readiness ----------------------------------------------------------------------------------

    def _sighting(self, delivery: IncomingDelivery, received_at: float) -> None:
        """Count a copy per (delivery id, hook id); `same_body` as SQL's three-valued AND of every copy's
        comparison with the recorded body (False wins, then None: not known), as the memory store's `_and`. Then
        add its hook id to the delivery id's `HOOKS` item, which `Reads.hooks_seen` batch-reads (a sighting's own
        key names its hook, which a reader asking by delivery id does not know)."""
        dynamodb, table = self._db.clients.dynamodb, self._db.table
        recorded = dynamodb.get_item(
            TableName=table,
            Key=key(keys.delivery(delivery.delivery_id)),
            ProjectionExpression="body_sha256",
            ConsistentRead=True,
        ).get("Item")
        same = None if recorded is None else from_item(recorded).get("body_sha256") == body_digest(delivery.body)

        def count(same_body: str = "", condition: str | None = None, **more: Any) -> None:
            dynamodb.update_item(
                TableName=table,
                Key=key(keys.sighting(delivery.delivery_id, delivery.hook_id)),
                UpdateExpression="SET first_at = if_not_exists(first_at, :at), last_at = :at, secret_index = :index"
                f"{same_body} ADD #count :one",
                ExpressionAttributeNames={"#count": "count"},
                ExpressionAttributeValues=values(at=received_at, index=delivery.secret_index, one=1, **more),
                **({} if condition is None else {"ConditionExpression": condition}),
            )

        if same is True:  # True AND x is x
            count(", same_body = if_not_exists(same_body, :same)", same=True)
        elif same is False:
            count(", same_body = :same", same=False)
        else:  # None AND x is None, unless x is False
            try:
                count(", same_body = :same", "attribute_not_exists(same_body) OR same_body <> :no", same=None, no=False)
            except Exception as exc:
                if not is_error(exc, "ConditionalCheckFailedException"):
                    raise
                count()
        dynamodb.update_item(
            TableName=table,
            Key=key(keys.hooks_seen(delivery.delivery_id)),
            UpdateExpression="ADD hooks :hook",
            ExpressionAttributeValues=values(hook={sighted_hook(delivery.hook_id)}),
        )

    def _ping(self) -> None:
        self._db.clients.dynamodb.update_item(
            TableName=self._db.table,
            Key=key(keys.PROBE),
            UpdateExpression="SET #at = :at",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues=values(at=self._db.clock.now()),
        )
