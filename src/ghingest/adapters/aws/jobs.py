"""Forward jobs' creation and dispatch: the original (generation 0) jobs inside the store's `record_outcomes`
transactions (the outbox), and the notices of new jobs, originals and replays, on the forwards topic.

A new job carries the sparse `UNDISPATCHED` marker until its notice is published (`dispatch`, after the commit):
a notice lost between the commit and the publish is published by the sweeper (`sweep_now`), never lost. A
destination with no queue keeps its jobs undispatched (a log line says to add it to the routes file).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import structlog

from ghingest.adapters.aws import keys, pauses
from ghingest.adapters.aws.clients import reason
from ghingest.adapters.aws.forward_queues import ForwardQueues
from ghingest.adapters.aws.job_items import counts_update, guard_put, job_item, notice_attributes, notice_body
from ghingest.adapters.aws.table import Item, TableContext, batch_get, key, put_new, query, reserve, values
from ghingest.core.events import EventRecord
from ghingest.core.processing import StoredDelivery
from ghingest.core.routing import ForwardTarget

log = structlog.get_logger("ghingest.aws.forwarding")

_PUBLISH_BATCH = 10  # entries per SNS PublishBatch


class AwsJobs:
    """The store's `JobWriter`, and the dispatch of every new job.

    The store, per transaction of outcomes (blocking, on its thread): `batch_get` the `guard_keys` of each
    outcome's targets; `guarded_destinations` of what came back; `writes` per outcome, with ids from
    `reserve_ids(jobs_needed)`; then once `count_updates` over the transaction's entries (a transaction may not
    touch an item twice, and several outcomes may go to one destination). After the commit:
    `await dispatch(job_ids_in(entries))`.
    """

    def __init__(self, db: TableContext, queues: ForwardQueues | None = None) -> None:
        self._db = db
        self.queues = queues or ForwardQueues(db)

    # -- inside the store's transaction --

    @staticmethod
    def guard_keys(delivery_id: str, targets: Sequence[ForwardTarget]) -> list[dict[str, str]]:
        """The original-job guards to read (consistently) before the transaction: one per destination."""
        return [keys.job_guard(delivery_id, d) for d in dict.fromkeys(t.destination for t in targets)]

    @staticmethod
    def guarded_destinations(items: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
        """(delivery id, destination) of the guards that exist, from the items a `batch_get` of them returned."""
        return {(str(item["delivery_id"]), str(item["destination"])) for item in items}

    @staticmethod
    def jobs_needed(delivery_id: str, targets: Sequence[ForwardTarget], guarded: set[tuple[str, str]]) -> int:
        """How many jobs `writes` creates for `targets`: the ids to reserve."""
        return sum((delivery_id, d) not in guarded for d in dict.fromkeys(t.destination for t in targets))

    def reserve_ids(self, count: int) -> range:
        """Job ids from the `job` counter (blocking; one UpdateItem, none for 0)."""
        return reserve(self._db, "job", count)

    def writes(
        self,
        delivery: StoredDelivery,
        targets: Sequence[ForwardTarget],
        guarded: set[tuple[str, str]],
        job_ids: Iterator[int],
        now: float,
        record: EventRecord | None,
    ) -> list[Item]:
        """Transaction entries for the original jobs of `targets` that do not exist yet: per job its item and its
        guard, each on the condition that it does not exist (recording again never duplicates a job; a concurrent
        recorder's transaction fails and reads the guards again). The first target of a destination wins."""
        entries: list[Item] = []
        routes = {t.destination: t.route for t in reversed(targets)}
        for destination in dict.fromkeys(t.destination for t in targets):
            if (delivery.delivery_id, destination) in guarded:
                continue
            job_id = next(job_ids)
            item = job_item(
                job_id=job_id,
                delivery_id=delivery.delivery_id,
                delivery_seq=delivery.seq,
                received_at=delivery.received_at,
                destination=destination,
                route=routes[destination],
                generation=0,
                replay=False,
                now=now,
                event=record.event if record is not None else delivery.event,
                action=record.action if record is not None else None,
                repository=record.repository if record is not None else None,
            )
            entries += [
                put_new(self._db.table, item),
                guard_put(self._db.table, delivery.delivery_id, destination, job_id),
            ]
        return entries

    def count_updates(self, entries: Sequence[Item]) -> list[Item]:
        """One queue-depth update per destination of the jobs that `entries` create."""
        queued: dict[str, int] = {}
        for item in _new_jobs(entries):
            queued[item["destination"]["S"]] = queued.get(item["destination"]["S"], 0) + 1
        return [counts_update(self._db.table, d, queued=q) for d, q in sorted(queued.items())]

    @staticmethod
    def job_ids_in(entries: Sequence[Item]) -> list[int]:
        return [int(item["job_id"]["N"]) for item in _new_jobs(entries)]

    # -- after the commit --

    async def dispatch(self, job_ids: Sequence[int]) -> None:
        """Publish the notices of these jobs (those still undispatched), then clear their markers. Never raises:
        a failure is logged (ids, destinations and error codes, never a payload) and left to the sweeper."""
        if job_ids:
            try:
                await self._db.run("forwards.dispatch", self.dispatch_now, list(job_ids))
            except Exception as exc:
                log.error("forward.dispatch_error", jobs=len(job_ids), error=reason(exc))

    def sweep_now(self, older_than: float, limit: int = 1000) -> int:
        """Dispatch (blocking) the jobs still undispatched `older_than` seconds after their creation (a paused
        destination's excepted); how many."""
        before = keys.t(self._db.clock.now() - older_than)
        held_back = pauses.paused_names(self._db)  # a paused destination's jobs stay parked
        found: list[int] = []
        for item in query(
            self._db,
            IndexName="gsi3",
            KeyConditionExpression="gsi3pk = :marker AND gsi3sk < :before",
            ExpressionAttributeValues=values(marker=keys.UNDISPATCHED, before=before),
        ):
            if item["destination"] in held_back:
                continue
            found.append(int(item["job_id"]))
            if len(found) >= limit:
                break
        self.dispatch_now(found)
        return len(found)

    def dispatch_now(self, job_ids: Sequence[int]) -> None:
        """`dispatch`, blocking; a destination's failure is logged and does not keep the others from being sent. A
        paused destination's jobs stay undispatched (parked, `pauses`) until it is resumed."""
        if not job_ids:
            return
        waiting: dict[str, list[dict[str, Any]]] = {}
        held_back = pauses.paused_names(self._db)
        for job in batch_get(self._db, [keys.job(i) for i in job_ids]):
            if "gsi3pk" in job and job["destination"] not in held_back:
                waiting.setdefault(str(job["destination"]), []).append(job)
        for destination, jobs in sorted(waiting.items()):
            try:
                self._publish(destination, sorted(jobs, key=lambda job: int(job["job_id"])))
            except Exception as exc:
                log.error("forward.dispatch_error", destination=destination, jobs=len(jobs), error=reason(exc))

    def _publish(self, destination: str, jobs: list[dict[str, Any]]) -> None:
        topic = self._db.options.forwards_topic_arn
        if topic is None or self.queues.url(destination, create=True) is None:
            message = f"no queue for destination {destination}: add it to the routes file and redeploy"
            log.error("forward.no_queue", destination=destination, jobs=len(jobs), error=message)
            return
        for start in range(0, len(jobs), _PUBLISH_BATCH):
            chunk = jobs[start : start + _PUBLISH_BATCH]
            answer = self._db.clients.sns.publish_batch(
                TopicArn=topic,
                PublishBatchRequestEntries=[
                    {
                        "Id": str(job["job_id"]),
                        "Message": notice_body(int(job["job_id"])),
                        "MessageAttributes": notice_attributes(job),
                    }
                    for job in chunk
                ],
            )
            for failed in answer.get("Failed", []):
                log.error("forward.publish_error", destination=destination, job_id=failed.get("Id"),
                          error=failed.get("Code"))  # fmt: skip
            for sent in answer.get("Successful", []):
                self._dispatched(int(sent["Id"]))

    def _dispatched(self, job_id: int) -> None:
        try:
            self._db.clients.dynamodb.update_item(
                TableName=self._db.table,
                Key=key(keys.job(job_id)),
                UpdateExpression="REMOVE gsi3pk, gsi3sk",
                ConditionExpression="attribute_exists(pk)",
            )
        except Exception as exc:  # the sweeper publishes it again: a duplicate notice is harmless
            log.error("forward.dispatch_mark_error", job_id=job_id, error=reason(exc))


def _new_jobs(entries: Sequence[Item]) -> Iterator[Item]:
    """The job items that `entries` put."""
    for entry in entries:
        item = entry.get("Put", {}).get("Item")
        if item is not None and item["sk"]["S"] == keys.JOB_SK and item["pk"]["S"].startswith("JOB#"):
            yield item
