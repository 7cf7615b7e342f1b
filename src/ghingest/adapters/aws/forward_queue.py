"""The AWS forward queue: jobs in DynamoDB (`job_items`), one SQS queue per destination behind the forwards topic
(`forward_queues`), which carries a notice per job.

The job item decides, the message only wakes: a claim receives notices (the visibility timeout is the lease) and
takes each job with a conditional update — due (pending or retry from its due time, or delivering with its lease run
out), then delivering until the lease's end — so that a duplicate notice, a notice of a job another claimer holds or
one of a job that is done never leads to a second attempt. A notice of a job that is done is finished with; one of
a job not due yet is hidden until it is (at most SQS's 12 hours, then hidden again). After an attempt is recorded
(job, attempt, destination counts in one transaction) the message follows it: finished with when delivered, hidden
until the retry is due, sent to the destination's DLQ and finished with when dead — so a dead job is both a
message in the DLQ and a dead letter in the table.

"Finished with" is a DeleteMessage for a message `claim` received. A message the forwarder Lambda's event source
delivered (`adopt`) is not deleted: Lambda deletes every message the function does not report failed, so it is
only marked `settled`; a message kept (retried, hidden, released, not recorded) is not settled, and is reported
failed so that Lambda keeps it (as the inbox's `SqsHandle.event_source`).

Leases are visibility timeouts, so a crashed claimer's jobs come back by themselves: `single_forwarder` is false and
`recover` releases nothing. Receipt handles are the claiming process's own (`release` and the messages of
`record_attempts` need them); a result for a job this process did not claim is recorded all the same, and its
message is left to come back and be found done.

Each transaction that moves a job (an attempt, a release, a replay) puts a `forward` change of its delivery on the
change feed (`feed.transact_with_changes`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ghingest.adapters.aws import keys, pauses
from ghingest.adapters.aws.clients import condition_failed, is_error, reason, visibility
from ghingest.adapters.aws.feed import transact_with_changes
from ghingest.adapters.aws.items import stored_delivery, string_attributes
from ghingest.adapters.aws.job_items import (
    FINAL,
    STATUS_NAMES,
    attempt_counts_update,
    attempt_item,
    attempt_job_update,
    forward_job,
    job_update,
    notice_body,
    notice_job_id,
)
from ghingest.adapters.aws.jobs import AwsJobs
from ghingest.adapters.aws.payloads import with_bodies
from ghingest.adapters.aws.replays import create_replays
from ghingest.adapters.aws.table import TableContext, from_item, get, key, put_new, reserve, values
from ghingest.adapters.memory.signal import Signal
from ghingest.adapters.memory.signal import wait as signal_wait
from ghingest.core.errors import StoreUnavailable
from ghingest.core.forward_states import ForwardStatus, can_move
from ghingest.ports import (
    AttemptResult,
    DestinationPause,
    DestinationTest,
    ForwardJob,
    ForwardQueueCapabilities,
    ReplayTarget,
)

log = structlog.get_logger("ghingest.aws.forwarding")

ADOPT_LEASE = 900.0  # s: an adopted job's lease, a Lambda function's longest run (its message's own timeout rules)
WAIT_POLL = 0.2  # s between two looks at the queues' depths in `wait_for_work`
_RECEIVE_BATCH = 10  # SQS's most messages per ReceiveMessage
_RELEASE = "SET #status = claimed_from, next_attempt_at = :now REMOVE claim_token, claimed_from"  # as it was


@dataclass(frozen=True, slots=True)
class _Message:
    """A notice as this process has it: received by `claim`, or delivered by a Lambda event source (`adopt`)."""

    queue_url: str
    receipt: str
    message_id: str
    event_source: bool = False  # Lambda deletes it unless the function reports it failed


@dataclass(frozen=True, slots=True)
class _Held:
    """A job this process claimed: its message, its claim's token, and what recording its attempt needs."""

    message: _Message
    token: str
    attempts: int
    replay: bool
    delivery_id: str


class AwsForwardQueue:
    capabilities = ForwardQueueCapabilities(single_forwarder=False)

    def __init__(self, db: TableContext, jobs: AwsJobs | None = None) -> None:
        self._db = db
        self._jobs = jobs or AwsJobs(db)
        self._queues = self._jobs.queues
        self._held: dict[int, _Held] = {}
        self._settled: dict[str, bool] = {}  # adopted message id -> Lambda may delete it (partial batch response)
        self._queue_by_arn: dict[str, str] = {}
        self._lock = threading.Lock()  # the maps above are used from the adapter's threads
        self._resumed = Signal()  # this process's waiters hear of a resume at once (others see the queue grow)

    # -- claiming --

    async def claim(self, destination: str, *, limit: int, lease_seconds: float) -> Sequence[ForwardJob]:
        if limit <= 0:
            return []
        return await self._db.run("forwards.claim", self._claim, destination, limit, lease_seconds)

    async def adopt(
        self, records: Sequence[Mapping[str, Any]], *, lease_seconds: float = ADOPT_LEASE
    ) -> list[ForwardJob]:
        """The forwarder Lambda's batch (SQS event records): the jobs their notices name, taken as a claim takes
        them. Afterwards `settled(message id)` says which messages Lambda may delete (the job is delivered, dead or
        not a job's); the others' visibility this queue has set itself (due later, retried, or not recorded)."""
        return await self._db.run("forwards.adopt", self._adopt, list(records), lease_seconds)

    def settled(self, message_id: str) -> bool:
        return self._settled.get(message_id, False)

    def _claim(self, destination: str, limit: int, lease_seconds: float) -> list[ForwardJob]:
        url = self._queues.url(destination, create=False)
        if url is None:
            return []
        now = self._db.clock.now()
        held_back = pauses.paused_names(self._db)
        taken: list[dict[str, Any]] = []
        while len(taken) < limit:
            answer = self._db.clients.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(_RECEIVE_BATCH, limit - len(taken)),
                VisibilityTimeout=visibility(lease_seconds),
                WaitTimeSeconds=0,
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            for m in messages:
                message = _Message(url, m["ReceiptHandle"], m["MessageId"])
                job = self._take(message, m["Body"], now, lease_seconds, held_back, destination)
                if job is not None:
                    taken.append(job)
        return self._forward_jobs(taken)

    def _adopt(self, records: list[Mapping[str, Any]], lease_seconds: float) -> list[ForwardJob]:
        with self._lock:
            self._settled.clear()  # one batch per invocation: only this one's messages are asked about
        now = self._db.clock.now()
        held_back = pauses.paused_names(self._db)
        taken = []
        for r in records:
            url = self._queue_of(str(r["eventSourceARN"]))
            message = _Message(url, str(r["receiptHandle"]), str(r["messageId"]), event_source=True)
            job = self._take(message, str(r["body"]), now, lease_seconds, held_back)
            if job is not None:
                taken.append(job)
        return self._forward_jobs(taken)

    def _take(
        self,
        message: _Message,
        body: str,
        now: float,
        lease_seconds: float,
        held_back: frozenset[str],
        destination: str | None = None,
    ) -> dict[str, Any] | None:
        """Take the job of one notice, or settle the notice: finished with when it names no job to attempt
        (unknown, done, another destination's, a paused destination's: parked), hidden until its job is due when
        that is later."""
        job_id = notice_job_id(body)
        if job_id is None:
            log.warning("forward.bad_notice", message_id=message.message_id)
            self._finish(message)
            return None
        token = uuid.uuid4().hex
        condition = "#status IN (:pending, :retry, :delivering) AND next_attempt_at <= :now"
        names = dict(STATUS_NAMES)
        if destination is not None:
            condition += " AND #destination = :destination"
        paused = {f"paused{n}": name for n, name in enumerate(sorted(held_back)[:99])}  # IN takes up to 100
        if paused:
            condition += f" AND NOT #destination IN ({', '.join(':' + p for p in paused)})"
        if destination is not None or paused:
            names["#destination"] = "destination"
        try:
            answer = self._db.clients.dynamodb.update_item(
                TableName=self._db.table,
                Key=key(keys.job(job_id)),
                UpdateExpression=(
                    "SET #status = :delivering, next_attempt_at = :until, claim_token = :token,"
                    " claimed_from = if_not_exists(claimed_from, #status)"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values(
                    pending=ForwardStatus.PENDING.value,
                    retry=ForwardStatus.RETRY.value,
                    delivering=ForwardStatus.DELIVERING.value,
                    now=now,
                    until=now + lease_seconds,
                    token=token,
                    **({} if destination is None else {"destination": destination}),
                    **paused,
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_error(exc, "ConditionalCheckFailedException"):
                raise
            self._not_claimable(message, self._job_after_failure(exc, job_id), now, held_back, destination)
            return None
        job = from_item(answer["Attributes"])
        with self._lock:
            self._held[job_id] = _Held(
                message, token, int(job["attempts"]), bool(job["replay"]), str(job["delivery_id"])
            )
        self._keep(message)
        return job

    def _job_after_failure(self, exc: BaseException, job_id: int) -> dict[str, Any] | None:
        old = getattr(exc, "response", {}).get("Item")
        return from_item(old) if old is not None else get(self._db, keys.job(job_id))

    def _not_claimable(
        self,
        message: _Message,
        job: dict[str, Any] | None,
        now: float,
        held_back: frozenset[str],
        destination: str | None,
    ) -> None:
        if job is None or ForwardStatus(job["status"]) in FINAL or destination not in (None, job["destination"]):
            self._finish(message)
            return
        if job["destination"] in held_back and pauses.park(self._db, job, now):
            self._finish(message)  # parked: its notice is published again when the destination is resumed
            return
        # Active, not due: another claimer holds it (its lease) or its retry is later. Hidden until then.
        self._hide(message, float(job["next_attempt_at"]) - now)
        self._keep(message)

    def _forward_jobs(self, jobs: list[dict[str, Any]]) -> list[ForwardJob]:
        """ForwardJobs of taken job items, by id, each with its delivery's headers and body."""
        deliveries = with_bodies(self._db, [str(j["delivery_id"]) for j in jobs])
        out = []
        for job in sorted(jobs, key=lambda j: int(j["job_id"])):
            found = deliveries.get(str(job["delivery_id"]))
            if found is None:  # cannot happen (a job is created with its delivery's outcome); left to its lease
                log.error("forward.delivery_missing", job_id=job["job_id"])
                continue
            out.append(forward_job(job, stored_delivery(*found)))
        return out

    # -- attempts --

    async def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        if results:
            await self._db.run("forwards.record_attempts", self._record_all, list(results))

    def _record_all(self, results: list[AttemptResult]) -> None:
        for result, attempt_id in zip(results, reserve(self._db, "attempt", len(results)), strict=True):
            self._record(result, attempt_id)

    def _record(self, r: AttemptResult, attempt_id: int) -> None:
        """One attempt, on the condition that the job is still delivering with the attempts it had when claimed
        (and by this claim, when this process holds it); then its message."""
        with self._lock:
            held = self._held.get(r.job_id)
        if held is not None:
            attempts, replay, token, delivery_id = held.attempts, held.replay, held.token, held.delivery_id
        else:
            job = get(self._db, keys.job(r.job_id))
            if job is None or job["status"] != ForwardStatus.DELIVERING.value:
                return  # not being delivered any more
            attempts, replay, token, delivery_id = int(job["attempts"]), bool(job["replay"]), None, job["delivery_id"]
        if not can_move(ForwardStatus.DELIVERING, r.next_status):
            return
        table = self._db.table
        entries = [
            attempt_job_update(table, r, attempts, token),
            put_new(table, attempt_item(r, attempt_id, attempts + 1, replay)),
            attempt_counts_update(table, r),
        ]
        try:
            transact_with_changes(self._db, entries, [("forward", str(delivery_id))])
        except Exception as exc:
            if not condition_failed(exc):
                raise
            self._forget(r.job_id)  # its lease ran out and someone else has it, or it is recorded already
            return
        if held is not None:
            self._follow(held.message, r)
        self._forget(r.job_id)

    def _follow(self, message: _Message, r: AttemptResult) -> None:
        """The message follows its recorded job. A failure here is logged only: the message comes back when its
        visibility ends, and a claim then finds the job done (finished with) or not due (hidden again)."""
        try:
            if r.next_status is ForwardStatus.RETRY:
                self._hide(message, (r.next_attempt_at or 0.0) - self._db.clock.now(), least=0)
            elif r.next_status is ForwardStatus.DEAD:
                dlq = self._queues.dead_letter_url(r.destination)
                if dlq is None:
                    log.error("forward.no_dead_letter_queue", destination=r.destination, job_id=r.job_id)
                else:
                    self._db.clients.sqs.send_message(
                        QueueUrl=dlq,
                        MessageBody=notice_body(r.job_id),
                        MessageAttributes=string_attributes({"destination": r.destination}, ["destination"]),
                    )
                self._finish(message)
            elif r.next_status is ForwardStatus.DELIVERED:
                self._finish(message)
        except Exception as exc:
            log.warning("forward.message_error", job_id=r.job_id, destination=r.destination, error=reason(exc))

    # -- releasing, recovering --

    async def release(self, job_ids: Sequence[int]) -> int:
        if not job_ids:
            return 0
        return await self._db.run("forwards.release", self._release, list(job_ids))

    def _release(self, job_ids: list[int]) -> int:
        now = self._db.clock.now()
        released = 0
        for job_id in job_ids:
            held = self._forget(job_id)
            if held is None:
                continue
            plain = {"now": now, "delivering": ForwardStatus.DELIVERING.value, "token": held.token}
            update = job_update(
                self._db.table, job_id, _RELEASE, "#status = :delivering AND claim_token = :token", plain
            )
            try:
                transact_with_changes(self._db, [update], [("forward", held.delivery_id)])
            except Exception as exc:
                if not condition_failed(exc):
                    raise
                continue  # not this claim's any more
            self._hide(held.message, 0, least=0)
            self._keep(held.message)
            released += 1
        return released

    async def recover(self) -> int:
        return 0  # leases are visibility timeouts: a crashed forwarder's messages come back when they run out

    async def sweep(self, *, older_than: float) -> int:
        """The sweeper's: dispatch the jobs still undispatched `older_than` seconds after their creation."""
        return await self._db.run("forwards.sweep", self._jobs.sweep_now, older_than)

    # -- replays --

    async def enqueue_replays(self, targets: Sequence[ReplayTarget]) -> int:
        created = await self._db.run("forwards.enqueue_replays", create_replays, self._db, list(targets))
        await self._jobs.dispatch(created)
        return len(created)

    # -- pauses, test deliveries --

    async def pause(self, destination: str, *, by: str) -> DestinationPause:
        return await self._db.run("forwards.pause", pauses.pause, self._db, destination, by)

    async def resume(self, destination: str) -> DestinationPause | None:
        ended, parked = await self._db.run("forwards.resume", pauses.unpause, self._db, destination)
        if parked:
            await self._jobs.dispatch(parked)
        if ended is not None:
            self._resumed.notify()
        return ended

    async def paused(self) -> Sequence[DestinationPause]:
        return await self._db.run("forwards.paused", pauses.paused, self._db)

    async def record_test(self, test: DestinationTest) -> None:
        await self._db.run("forwards.record_test", pauses.record_test, self._db, test)

    # -- waiting --

    async def wait_for_work(self, timeout: float) -> None:
        """Return when a queue has more visible messages than when the wait began (new or due again), or after
        `timeout`. Only a wake-up: messages that were visible already (another destination's, one no pump takes) do
        not end a wait, so that they never make pumps spin."""
        deadline = time.monotonic() + timeout
        least: dict[str, int] | None = None
        resumed = self._resumed.register()  # before the first look: a resume while it is taken still wakes
        while True:
            try:
                depths = await self._db.run("forwards.wait_for_work", self._depths)
            except StoreUnavailable:
                if self._db.closed:
                    raise
                depths = None  # an unreachable queue wakes no one: wait out the timeout
            if depths is not None:
                if least is not None and any(n > least.get(url, 0) for url, n in depths.items()):
                    return
                least = depths if least is None else {u: min(n, least.get(u, n)) for u, n in depths.items()}
            remaining = deadline - time.monotonic()
            if remaining <= 0 or resumed.is_set():
                return
            await signal_wait(resumed, min(WAIT_POLL, remaining))
            if resumed.is_set():
                return

    def _depths(self) -> dict[str, int]:
        depths = {}
        for url in self._queues.urls():
            answer = self._db.clients.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )
            depths[url] = int(answer["Attributes"]["ApproximateNumberOfMessages"])
        return depths

    # -- messages --

    def _forget(self, job_id: int) -> _Held | None:
        with self._lock:
            return self._held.pop(job_id, None)

    def _finish(self, message: _Message) -> None:
        """Done with a message: a claimed one is deleted; an adopted one is settled (Lambda deletes it)."""
        if message.event_source:
            with self._lock:
                self._settled[message.message_id] = True
        else:
            self._db.clients.sqs.delete_message(QueueUrl=message.queue_url, ReceiptHandle=message.receipt)

    def _keep(self, message: _Message) -> None:
        """A message to keep (its visibility set by this queue): an adopted one is reported failed, not deleted."""
        if message.event_source:
            with self._lock:
                self._settled[message.message_id] = False

    def _hide(self, message: _Message, seconds: float, *, least: int = 1) -> None:
        self._db.clients.sqs.change_message_visibility(
            QueueUrl=message.queue_url, ReceiptHandle=message.receipt, VisibilityTimeout=max(least, visibility(seconds))
        )

    def _queue_of(self, arn: str) -> str:
        """The URL of the queue an event record came from (`arn:aws:sqs:<region>:<account>:<name>`)."""
        url = self._queue_by_arn.get(arn)
        if url is None:
            *_, account, name = arn.split(":")
            url = str(self._db.clients.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
            self._queue_by_arn[arn] = url
        return url
