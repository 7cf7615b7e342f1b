"""The AWS forward queue on moto: SNS filter policies route notices, SQS timers carry leases and retries, the DLQ
receives dead jobs, and the job items decide whatever the messages say (duplicates, two claimers)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import orjson
import pytest

from ghingest.adapters.aws import AwsOptions
from ghingest.adapters.aws.clients import AwsClients
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.routing import ForwardTarget
from ghingest.ports import ReplaySelection
from tests.aws_support import aws_backend
from tests.integration.aws_forwarding.conftest import Queues, WallClock, poll, result, route

pytestmark = pytest.mark.anyio

CI = ForwardTarget("ci", "releases")
CHAT = ForwardTarget("chat", None)


async def test_a_notice_reaches_only_its_destinations_queue(backend: Any, clock: WallClock, queues: Queues) -> None:
    await route(backend, clock, {"d1": [CI, CHAT], "d2": [CI]})
    jobs = {
        (f.delivery_id, f.destination): f.id for d in ("d1", "d2") for f in await backend.forward_log.forwards_of(d)
    }
    assert queues.drain("ci") == sorted([jobs["d1", "ci"], jobs["d2", "ci"]])
    assert queues.drain("chat") == [jobs["d1", "chat"]]
    assert await backend.forwards.sweep(older_than=0) == 0  # every notice was dispatched


async def test_a_retried_job_comes_back_after_its_visibility_delay(backend: Any, clock: WallClock) -> None:
    await route(backend, clock, {"d1": [CI]})
    [job] = await backend.forwards.claim("ci", limit=10, lease_seconds=60)
    due = time.time() + 1.0
    await backend.forwards.record_attempts([result(job, ForwardStatus.RETRY, code=503, next_at=due)])
    assert await backend.forwards.claim("ci", limit=10, lease_seconds=60) == []
    [again] = await poll(lambda: backend.forwards.claim("ci", limit=10, lease_seconds=60))
    assert time.time() >= due
    assert (again.id, again.attempts, again.first_attempt_at) == (job.id, 1, pytest.approx(due - 1.0, abs=0.5))
    [view] = await backend.forward_log.forwards_of("d1")
    assert (view.status, view.attempts, view.last_error) == (ForwardStatus.DELIVERING, 1, "HTTP 503")
    assert [(a.number, a.outcome, a.status_code) for a in view.attempt_log] == [(1, "retry", 503)]
    [stats] = await backend.forward_log.stats()
    assert (stats.queued, stats.dead, stats.attempts, stats.failed, stats.last_error) == (1, 0, 1, 1, "HTTP 503")


async def test_a_dead_job_ends_as_a_message_in_the_dlq_and_a_dead_letter(
    backend: Any, clock: WallClock, queues: Queues
) -> None:
    await route(backend, clock, {"d1": [CI], "d2": [CI]})
    ok, bad = await backend.forwards.claim("ci", limit=10, lease_seconds=60)
    await backend.forwards.record_attempts(
        [result(ok, ForwardStatus.DELIVERED), result(bad, ForwardStatus.DEAD, code=410)]
    )
    assert queues.drain("ci", dead=True) == [bad.id]
    assert queues.depth("ci") == 0  # both messages are gone from the queue
    [dead] = await backend.forward_log.dead_letters()
    assert (dead.id, dead.status, dead.last_error, dead.completed_at is not None) == (
        bad.id, ForwardStatus.DEAD, "HTTP 410", True
    )  # fmt: skip
    [stats] = await backend.forward_log.stats()
    assert (stats.queued, stats.dead, stats.attempts, stats.delivered, stats.failed) == (0, 1, 2, 1, 1)
    # A replay supersedes it: one generation up, a new notice in the queue, no dead letter any more.
    targets = await backend.forward_log.replay_targets(ReplaySelection(destination="ci", dead_only=True))
    assert await backend.forwards.enqueue_replays(targets) == 1
    assert await backend.forward_log.dead_letters() == []
    [replayed] = await backend.forwards.claim("ci", limit=10, lease_seconds=60)
    assert (replayed.delivery_id, replayed.replay, replayed.attempts) == (bad.delivery_id, True, 0)
    [stats] = await backend.forward_log.stats()
    assert (stats.queued, stats.dead) == (1, 0)


async def test_a_duplicate_notice_of_a_delivered_job_is_deleted_without_a_second_attempt(
    backend: Any, clock: WallClock, queues: Queues
) -> None:
    await route(backend, clock, {"d1": [CI]})
    [job] = await backend.forwards.claim("ci", limit=10, lease_seconds=60)
    await backend.forwards.record_attempts([result(job, ForwardStatus.DELIVERED)])
    queues.send_notice("ci", job.id)  # published twice (a sweep after a lost marker removal), or redelivered
    assert await backend.forwards.claim("ci", limit=10, lease_seconds=60) == []
    assert queues.depth("ci") == 0  # deleted, not hidden
    [view] = await backend.forward_log.forwards_of("d1")
    assert (view.status, view.attempts) == (ForwardStatus.DELIVERED, 1)


async def test_two_claimers_never_hold_the_same_job(options: AwsOptions, clock: WallClock, queues: Queues) -> None:
    async with (
        aws_backend(options, clock) as one,
        aws_backend(options, clock) as two,
    ):
        await route(one, clock, {f"d{i}": [CI] for i in range(12)})
        ids = [f.id for i in range(12) for f in await one.forward_log.forwards_of(f"d{i}")]
        for job_id in ids:  # every notice twice: both claimers may receive one of the same job
            queues.send_notice("ci", job_id)
        first, second = await asyncio.gather(
            one.forwards.claim("ci", limit=30, lease_seconds=60), two.forwards.claim("ci", limit=30, lease_seconds=60)
        )
        assert {j.id for j in first}.isdisjoint(j.id for j in second)
        assert sorted(j.id for j in [*first, *second]) == sorted(ids)
        # The duplicates are hidden until the leases end, not attempted.
        assert await one.forwards.claim("ci", limit=30, lease_seconds=60) == []


async def test_the_lambda_adopts_its_records_and_learns_which_messages_are_settled(
    backend: Any, clock: WallClock, queues: Queues
) -> None:
    await route(backend, clock, {"d1": [CI], "d2": [CI], "d3": [CI]})
    records = queues.event_records("ci")
    assert len(records) == 3
    jobs = await backend.forwards.adopt(records)
    assert [j.delivery_id for j in jobs] == ["d1", "d2", "d3"]
    delivered, later, unrecorded = jobs
    await backend.forwards.record_attempts(
        [
            result(delivered, ForwardStatus.DELIVERED),
            result(later, ForwardStatus.RETRY, code=503, next_at=time.time() + 60),
        ]
    )
    settled = {j.id: backend.forwards.settled(r["messageId"]) for j, r in zip(jobs, records, strict=True)}
    assert settled == {delivered.id: True, later.id: False, unrecorded.id: False}


async def test_the_lambda_deletes_adopted_messages_the_queue_never_does(
    options: AwsOptions, clock: WallClock, queues: Queues
) -> None:
    """Lambda deletes every message of its batch that the function does not report failed: for adopted messages
    the queue only says which are settled (delivered, dead, a notice of a job that is done) and deletes none."""
    clients = AwsClients(options)
    deletes: list[tuple[str, str]] = []  # (operation, queue URL) of every delete the backend's SQS client makes

    def count(**call: Any) -> None:
        deletes.append((call["model"].name, call["params"]["QueueUrl"]))

    for operation in ("DeleteMessage", "DeleteMessageBatch"):
        clients.sqs.meta.events.register(f"before-parameter-build.sqs.{operation}", count)

    def forward_deletes() -> list[str]:  # (the inbox deletes its own messages as `route` processes the deliveries)
        return [name for name, url in deletes if url == queues.url("ci")]

    async with aws_backend(options, clock, clients=clients) as backend:
        await route(backend, clock, {"d1": [CI], "d2": [CI], "d3": [CI]})
        records = queues.event_records("ci")
        delivered, dead, later = await backend.forwards.adopt(records)
        await backend.forwards.record_attempts(
            [
                result(delivered, ForwardStatus.DELIVERED),
                result(dead, ForwardStatus.DEAD, code=410),
                result(later, ForwardStatus.RETRY, code=503, next_at=time.time() + 60),
            ]
        )
        settled = {orjson.loads(r["body"])["job_id"]: backend.forwards.settled(r["messageId"]) for r in records}
        assert settled == {delivered.id: True, dead.id: True, later.id: False}
        assert queues.drain("ci", dead=True) == [dead.id]  # the dead job's notice is sent to the DLQ all the same
        queues.send_notice("ci", delivered.id)  # a duplicate notice of a job that is done
        [stale] = queues.event_records("ci")
        assert await backend.forwards.adopt([stale]) == []
        assert backend.forwards.settled(stale["messageId"]) is True
        assert forward_deletes() == []
        assert queues.depth("ci") == 4  # every adopted message is still there, in flight, for Lambda to delete
        # A claimed message is the queue's own to delete.
        await route(backend, clock, {"d4": [CI]})
        [claimed] = await backend.forwards.claim("ci", limit=10, lease_seconds=60)
        await backend.forwards.record_attempts([result(claimed, ForwardStatus.DELIVERED)])
        assert forward_deletes() == ["DeleteMessage"]


async def test_a_destination_without_a_queue_keeps_its_jobs_undispatched(options: AwsOptions, clock: WallClock) -> None:
    fixed = dataclasses.replace(options, create_missing_queues=False)  # as in AWS: only the routes file's queues
    async with aws_backend(fixed, clock) as backend:
        await route(backend, clock, {"d1": [CI]})
        assert await backend.forwards.claim("ci", limit=10, lease_seconds=60) == []
        assert await backend.forwards.sweep(older_than=0) == 1  # still undispatched: the sweeper tries again
        [view] = await backend.forward_log.forwards_of("d1")
        assert view.status is ForwardStatus.PENDING
    async with aws_backend(options, clock) as backend:  # the queue is added: the sweep sends it
        assert await backend.forwards.sweep(older_than=0) == 1
        assert await backend.forwards.sweep(older_than=0) == 0
        [job] = await poll(lambda: backend.forwards.claim("ci", limit=10, lease_seconds=60))
        assert job.delivery_id == "d1"


async def test_a_job_whose_lease_runs_out_is_claimed_again(backend: Any, clock: WallClock) -> None:
    await route(backend, clock, {"d1": [CI]})
    asked = time.time()  # the lease starts when SQS takes the receive, after this
    [held] = await backend.forwards.claim("ci", limit=10, lease_seconds=1)
    [again] = await poll(lambda: backend.forwards.claim("ci", limit=10, lease_seconds=60))
    assert time.time() >= asked + 1
    assert (again.id, again.attempts) == (held.id, 0)


async def test_a_replay_to_a_chosen_destination_takes_a_delivery_never_forwarded(
    backend: Any, clock: WallClock
) -> None:
    [outcome] = await route(backend, clock, {"d1": []})
    targets = await backend.forward_log.replay_targets(ReplaySelection(delivery_id="d1", to="audit"))
    assert [(destination, route) for _, destination, route in targets] == [("audit", None)]
    assert await backend.forwards.enqueue_replays(targets) == 1
    [job] = await backend.forwards.claim("audit", limit=10, lease_seconds=60)
    assert (job.delivery_id, job.replay, job.route) == ("d1", True, None)
    # The first job of (delivery, destination) holds the original-job guard, replay or not: recording the outcome
    # again with a job to that destination creates none, and the next replay is one generation up.
    assert outcome.processed is not None
    audit = dataclasses.replace(outcome.processed, forwards=(ForwardTarget("audit", "r"),))
    await backend.store.record_outcomes([dataclasses.replace(outcome, processed=audit)])
    assert await backend.forwards.enqueue_replays(targets) == 1
    forwards = await backend.forward_log.forwards_of("d1")
    assert [(f.generation, f.replay) for f in forwards] == [(0, True), (1, True)]


async def test_a_paused_destinations_notices_are_parked_off_sqs_and_published_again_on_resume(
    backend: Any, clock: WallClock, queues: Queues
) -> None:
    """The forwarder Lambda is handed a paused destination's notices: it attempts none, and settles them (Lambda
    deletes them; no receive counts towards the redrive) with their jobs parked; new jobs are not dispatched; the
    resume publishes a notice per parked job."""
    await route(backend, clock, {"d1": [CI, CHAT], "d2": [CI]})
    await backend.forwards.pause("ci", by="alice")
    records = queues.event_records("ci")
    assert await backend.forwards.adopt(records) == []
    assert all(backend.forwards.settled(r["messageId"]) for r in records)
    assert [j.delivery_id for j in await backend.forwards.adopt(queues.event_records("chat"))] == ["d1"]  # others flow
    await route(backend, clock, {"d3": [CI]})  # created while paused: not dispatched
    assert queues.depth("ci") == 2  # the two adopted, in flight for Lambda to delete; nothing new
    assert await backend.forwards.sweep(older_than=0) == 0  # the sweeper leaves a paused destination's jobs
    [stats] = [s for s in await backend.forward_log.stats() if s.destination == "ci"]
    assert (stats.queued, stats.attempts) == (3, 0)
    await backend.forwards.resume("ci")
    ci_jobs = [
        f.id for d in ("d1", "d2", "d3") for f in await backend.forward_log.forwards_of(d) if f.destination == "ci"
    ]
    assert queues.drain("ci") == sorted(ci_jobs)  # visible now: a notice per parked job (the adopted two in flight)
