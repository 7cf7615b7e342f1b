"""The AWS serverless profile end to end, every Lambda handler invoked in this process with the events AWS sends
(API Gateway HTTP API payload 2.0, SQS batches of the messages SNS delivered to the moto server's real queues),
against DynamoDB, SNS, SQS, S3 and Secrets Manager on a moto server (tests/aws_support.py).

The path of a delivery: receiver → DynamoDB (conditional put) + SNS deliveries topic → inbox queue → processor →
DynamoDB (event, release with history, forward jobs) + SNS forwards topic → a destination's queue (filter policy)
→ forwarder → a real HTTP destination on loopback; a failing destination's job ends in its dead-letter queue.
The GitHub sync function talks to the fake GitHub (`tests/fake_github`): a failed delivery is redelivered through
the receiver function, and a tracked repository's release enters the same path from the inbox on.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ghingest.adapters.aws import open_aws_backend
from ghingest.adapters.aws.clients import clients_for
from ghingest.adapters.aws.options import AwsOptions
from ghingest.app.aws_lambda import container, dashboard, forwarder, github_sync, observe, processor, receiver, sweeper
from ghingest.app.settings import load_settings
from ghingest.core import signature
from ghingest.core.errors import StoreUnavailable
from ghingest.core.reconcile import GapState
from ghingest.core.sources import is_polled
from ghingest.core.tracking import first_poll_at, repository_key
from ghingest.ports import SYSTEM_CLOCK, RejectionQuery
from tests.aws_support import fresh_aws
from tests.conftest import SECRET, TOKEN, free_port, release, run, signed
from tests.contract.support import incoming
from tests.destinations import Answer, Destination, routes_toml
from tests.e2e.aws_events import LambdaContext, http_api_request, sqs_batch
from tests.fake_github import FakeGitHub

CI_SECRET = "ci-destination-secret"


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A fresh table, topics, queues and bucket; a secret in Secrets Manager; two destinations (`ci` accepts and
    checks the signature, `chat` always fails); the environment the CDK stack gives every function."""
    options = fresh_aws("e2e")
    clients = clients_for(options)
    secret_arn = clients.secretsmanager.create_secret(
        Name=f"{options.table}-secrets",
        SecretString=orjson.dumps(
            {
                "webhook_secrets": [SECRET],
                "api_tokens": [TOKEN],
                "session_secret": "s" * 40,
                "destination_secrets": {"CI_DESTINATION_SECRET": CI_SECRET},  # the route file's `secret_env`
            }
        ).decode(),
    )["ARN"]
    with Destination(secret=CI_SECRET) as ci, Destination(lambda _r: Answer(status=500, body=b"down")) as chat:
        routes = tmp_path / "routes.toml"
        routes.write_text(
            routes_toml(
                {
                    "ci": {"url": ci.url, "secret_env": "CI_DESTINATION_SECRET"},
                    "chat": {
                        "url": chat.url,
                        "secret": "chat-destination-secret",
                        "retry": {"max_attempts": 2, "base_delay": 0.2, "jitter": 0},
                    },
                },
                [{"name": "releases", "events": ["release"], "destinations": ["ci", "chat"]}],
            )
        )
        monkeypatch.setenv("CI_DESTINATION_SECRET", "")  # set by the function from the secret; restored after
        environment = _environment(options, secret_arn, routes, tmp_path)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        container.reset()  # a cold start for each test
        try:
            yield {"options": options, "clients": clients, "ci": ci, "chat": chat, "secret_arn": secret_arn}
        finally:
            container.reset()


def _environment(options: AwsOptions, secret_arn: str, routes: Path, tmp_path: Path) -> dict[str, str]:
    for address in (options.endpoint_url, options.deliveries_topic_arn, options.inbox_queue_url):
        assert address
    for address in (options.forwards_topic_arn, options.payload_bucket):
        assert address
    return {
        "GHINGEST_DATABASE_URL": f"dynamodb://{options.table}",
        "GHINGEST_AWS_REGION": options.region or "us-east-1",
        "GHINGEST_AWS_ENDPOINT_URL": options.endpoint_url,
        "GHINGEST_AWS_DELIVERIES_TOPIC_ARN": options.deliveries_topic_arn,
        "GHINGEST_AWS_INBOX_QUEUE_URL": options.inbox_queue_url,
        "GHINGEST_AWS_FORWARDS_TOPIC_ARN": options.forwards_topic_arn,
        "GHINGEST_AWS_PAYLOAD_BUCKET": options.payload_bucket,
        "GHINGEST_AWS_SECRETS_ARN": secret_arn,
        "GHINGEST_AWS_CREATE_MISSING_QUEUES": "true",
        "GHINGEST_ROUTES_FILE": str(routes),
        "GHINGEST_DATA_DIR": str(tmp_path / "data"),
    }


def post(request: Any, *, base64_encoded: bool = False) -> dict[str, Any]:
    event = http_api_request(
        "POST", "/webhooks/github", headers=request.headers, body=request.body, base64_encoded=base64_encoded
    )
    response: dict[str, Any] = receiver.handler(event, None)
    return response


def response_json(response: dict[str, Any]) -> Any:
    body = response.get("body", "")
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    return orjson.loads(raw)


def receive(clients: Any, queue_url: str, count: int, *, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Exactly `count` messages from the queue (waiting for SNS's fan-out, bounded), then none more."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(messages)} of {count} messages arrived within {timeout} s")
        got = clients.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=60,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages += got.get("Messages", [])
    assert len(messages) == count, f"{len(messages)} messages, expected {count}"
    return messages


def queue_arn(clients: Any, url: str) -> str:
    return str(clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def queue_url(clients: Any, name: str) -> str:
    return str(clients.sqs.get_queue_url(QueueName=name)["QueueUrl"])


def reads(options: AwsOptions) -> Any:
    """The read side as another process sees it (a fresh backend on the same table)."""
    from ghingest.adapters.factory import open_backend

    settings = load_settings(webhook_secrets=SECRET, api_tokens=TOKEN)
    return open_backend(settings)


def invoke(handler: Any, clients: Any, url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What an SQS event source does: the batch to the function, then the messages it did not report failed
    deleted."""
    response: dict[str, Any] = handler(sqs_batch(messages, queue_arn=queue_arn(clients, url)), None)
    kept = {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}
    for message in messages:
        if message["MessageId"] not in kept:
            clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return response


def process_inbox(deployment: dict[str, Any], count: int) -> dict[str, Any]:
    clients, options = deployment["clients"], deployment["options"]
    return invoke(processor.handler, clients, options.inbox_queue_url, receive(clients, options.inbox_queue_url, count))


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """What the functions added to their CloudWatch metrics (Powertools' `Metrics`, which still emits them)."""
    sums: dict[str, float] = {}
    add = observe.METRICS.add_metric

    def adding(*, name: str, value: float, **rest: Any) -> None:
        sums[name] = sums.get(name, 0) + value
        add(name=name, value=value, **rest)

    monkeypatch.setattr(observe.METRICS, "add_metric", adding)
    return sums


def test_a_signed_release_ends_as_a_release_with_history_and_a_duplicate_or_a_bad_signature_does_not(
    deployment: dict[str, Any], counted: dict[str, float]
) -> None:
    options = deployment["options"]
    published = signed(release(action="published", release_id=501, tag="v5.0.1"), delivery_id="aws-e2e-1")
    edited = signed(
        release(action="edited", release_id=501, tag="v5.0.1", name="Five"), delivery_id="aws-e2e-2", form=True
    )
    assert post(published)["statusCode"] == 202
    assert post(edited, base64_encoded=True)["statusCode"] == 202  # form-encoded, base64 as API Gateway sends it
    duplicate = post(published)
    assert (duplicate["statusCode"], response_json(duplicate)["duplicate"]) == (200, True)
    forged = signed(release(release_id=777), delivery_id="aws-e2e-forged", secret="not-the-secret")
    refused = post(forged)
    assert (refused["statusCode"], response_json(refused)["error"]) == (401, "invalid_signature")

    assert process_inbox(deployment, 2) == {"batchItemFailures": []}  # two notices: not the duplicate's, not the 401's
    assert {name: counted.get(name) for name in ("DeliveriesAccepted", "DeliveriesDuplicate", "WebhookRejected")} == {
        "DeliveriesAccepted": 2, "DeliveriesDuplicate": 1, "WebhookRejected": 1
    }  # fmt: skip
    assert (counted.get("DeliveriesProcessed"), counted.get("DeliveriesRetried")) == (2, 0)

    async def check() -> None:
        backend = reads(options)
        await backend.resources.start()
        try:
            found = await backend.reads.get_release(501)
            assert found is not None
            assert [entry.action for entry in found.record.history] == ["published", "edited"]
            assert found.record.content.name == "Five"
            first = await backend.reads.get_delivery("aws-e2e-1")
            assert first is not None
            assert (first.status, first.release_id) == ("processed", 501)
            assert [s.count for s in first.sightings] == [1]  # the duplicate: counted, not recorded again
            assert await backend.reads.get_delivery("aws-e2e-forged") is None
            assert await backend.reads.get_release(777) is None
            # The 401 is in the rejected-requests log, written before its invocation returned.
            rejected = (await backend.rejections.page(RejectionQuery())).items
            assert [(b.reason.value, b.delivery_id, b.count) for b in rejected] == [
                ("wrong_secret", "aws-e2e-forged", 1)
            ]
        finally:
            await backend.resources.close()

    run(check())


def test_a_forward_reaches_its_destination_re_signed_and_a_failing_destination_ends_in_its_dead_letter_queue(
    deployment: dict[str, Any],
) -> None:
    clients, options = deployment["clients"], deployment["options"]
    ci, chat = deployment["ci"], deployment["chat"]
    assert post(signed(release(release_id=601), delivery_id="aws-fwd-1"))["statusCode"] == 202
    assert process_inbox(deployment, 1) == {"batchItemFailures": []}

    ci_url = queue_url(clients, f"{options.table}-fwd-ci")
    assert invoke(forwarder.handler, clients, ci_url, receive(clients, ci_url, 1)) == {"batchItemFailures": []}
    assert ci.delivery_ids() == {"aws-fwd-1"}
    sent = ci.accepted[0]
    signature.verify(sent.body, signature_256=sent.headers["x-hub-signature-256"], secrets=[CI_SECRET.encode()])

    chat_url = queue_url(clients, f"{options.table}-fwd-chat")
    first = receive(clients, chat_url, 1)
    kept = invoke(forwarder.handler, clients, chat_url, first)  # 500: due again later, the message kept
    assert kept == {"batchItemFailures": [{"itemIdentifier": first[0]["MessageId"]}]}
    second = receive(clients, chat_url, 1)  # back after the backoff (its visibility moved to the retry time)
    assert invoke(forwarder.handler, clients, chat_url, second) == {"batchItemFailures": []}  # dead: in the DLQ
    assert len(chat.received) == 2

    dead_url = queue_url(clients, f"{options.table}-fwd-chat-dlq")
    dead = receive(clients, dead_url, 1)
    assert orjson.loads(dead[0]["Body"])["job_id"]

    async def check() -> None:
        backend = reads(options)
        await backend.resources.start()
        try:
            letters = await backend.forward_log.dead_letters(destination="chat")
            assert [(f.delivery_id, f.attempts) for f in letters] == [("aws-fwd-1", 2)]
            forwards = {f.destination: f for f in await backend.forward_log.forwards_of("aws-fwd-1")}
            assert (forwards["ci"].status, forwards["chat"].status) == ("delivered", "dead")
            assert [a.status_code for a in forwards["chat"].attempt_log] == [500, 500]
        finally:
            await backend.resources.close()

    run(check())


def test_the_dashboard_function_serves_the_read_api_and_polls_instead_of_streaming(deployment: dict[str, Any]) -> None:
    assert post(signed(release(release_id=701, tag="v7"), delivery_id="aws-dash-1"))["statusCode"] == 202
    assert process_inbox(deployment, 1) == {"batchItemFailures": []}
    bearer = {"authorization": f"Bearer {TOKEN}", "accept": "application/json"}

    listed = dashboard.handler(http_api_request("GET", "/api/releases", headers=bearer), None)
    assert listed["statusCode"] == 200
    assert [r["id"] for r in response_json(listed)["items"]] == [701]
    assert dashboard.handler(http_api_request("GET", "/api/releases"), None)["statusCode"] == 401

    searched = dashboard.handler(http_api_request("GET", "/api/releases", headers=bearer, query="q=v7"), None)
    assert searched["statusCode"] == 400  # no full-text index on DynamoDB: said, not ignored
    assert "search is not available" in response_json(searched)["detail"]

    # Signed in through a sign-in link (the cookie comes back in payload 2.0's `cookies`), the page polls and
    # says so, and has no search box.
    login = dashboard.handler(http_api_request("GET", "/login", query=f"token={TOKEN}"), None)
    assert login["statusCode"] == 303
    cookie = "; ".join(c.split(";", 1)[0] for c in login["cookies"])
    page = dashboard.handler(http_api_request("GET", "/", headers={"cookie": cookie, "accept": "text/html"}), None)
    html = base64.b64decode(page["body"]).decode() if page.get("isBase64Encoded") else page["body"]
    assert page["statusCode"] == 200
    assert 'data-live-poll="5"' in html
    assert 'name="q"' not in html
    assert "v7" in html

    started = time.monotonic()
    live = dashboard.handler(http_api_request("GET", "/live", headers=bearer), None)
    assert time.monotonic() - started < 3  # answered at once: API Gateway would hold a stream until its timeout
    body = base64.b64decode(live["body"]).decode() if live.get("isBase64Encoded") else live["body"]
    assert live["statusCode"] == 200
    assert body.startswith("retry: 5000")
    assert "event: hello" in body


def test_the_sweeper_publishes_again_what_was_recorded_but_never_published(deployment: dict[str, Any]) -> None:
    options = deployment["options"]
    assert options.deliveries_topic_arn is not None
    # A receiver whose publish failed after the conditional put (SNS refused it, or the function died in between):
    # the delivery item is committed, its notice never sent, and GitHub was answered 503.
    gone = dataclasses.replace(options, deliveries_topic_arn=options.deliveries_topic_arn + "-gone")

    async def crash() -> None:
        backend = open_aws_backend(gone, clock=SYSTEM_CLOCK)
        await backend.resources.start()
        try:
            with pytest.raises(StoreUnavailable):
                await backend.inbox.append(incoming("aws-sweep-1"), received_at=time.time() - 3600)
        finally:
            await backend.resources.close()

    run(crash())
    assert sweeper.handler({}, None) == {"deliveries": 1, "forward_jobs": 0}
    assert process_inbox(deployment, 1) == {"batchItemFailures": []}
    assert sweeper.handler({}, None) == {"deliveries": 0, "forward_jobs": 0}  # processed: nothing left to send


# The GitHub sync function ---------------------------------------------------------------------------------------


def with_github(deployment: dict[str, Any], fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch, **settings: str) -> str:
    """The GitHub sync's configuration: the fake's URL and the stack's settings in the environment, a token in the
    secret (as an operator puts it there); the token is returned."""
    token = fake.add_token()
    clients, arn = deployment["clients"], deployment["secret_arn"]
    secret = orjson.loads(clients.secretsmanager.get_secret_value(SecretId=arn)["SecretString"])
    secret["github_token"] = token
    clients.secretsmanager.put_secret_value(SecretId=arn, SecretString=orjson.dumps(secret).decode())
    monkeypatch.setenv("GHINGEST_GITHUB_API_URL", fake.api_url)
    monkeypatch.setenv("GHINGEST_GITHUB_MUTATION_INTERVAL", "0")
    for name, value in settings.items():
        monkeypatch.setenv(f"GHINGEST_{name.upper()}", value)
    return token


def test_the_github_sync_has_a_failed_delivery_redelivered_and_sees_it_arrive(
    deployment: dict[str, Any], fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, counted: dict[str, float]
) -> None:
    fake, options = fake_github, deployment["options"]
    with Destination() as api_gateway:  # where the hook points: stands for the HTTP API in front of the receiver
        hook = fake.repo_hook("octo-org/hello-world", url=f"http://127.0.0.1:{free_port()}/down", secret=SECRET)
        lost = fake.deliver(hook, "release", release(release_id=801, tag="v8.0.1"))
        assert lost.status_code == 0  # nothing answered: GitHub lists the attempt as failed, and never retries it
        hook.url = api_gateway.url
        token = with_github(deployment, fake, monkeypatch, reconcile_hooks=hook.ref.key, reconcile_min_age="0")

        first = github_sync.handler({}, LambdaContext())
        assert (first["reconcile"], first["hooks"], first["hook_errors"]) == ("done", 1, 0)
        assert (first["gaps_found"], first["redeliveries_requested"]) == (1, 1)
        assert fake.counters.redeliveries_requested == 1
        assert {s.headers.get("authorization") for s in fake.seen} == {f"Bearer {token}"}  # the secret's token
        fake.wait_redeliveries()
        (redelivered,) = api_gateway.received

    # API Gateway hands the redelivery to the receiver function; the processor records it.
    assert post(redelivered)["statusCode"] == 202
    assert process_inbox(deployment, 1) == {"batchItemFailures": []}
    second = github_sync.handler({}, LambdaContext())
    assert (second["gaps_found"], second["redeliveries_requested"], second["gaps_arrived"]) == (0, 0, 1)
    assert fake.counters.redeliveries_requested == 1  # arrived: never asked for again
    assert (counted["ReconcileGapsFound"], counted["RedeliveriesRequested"], counted["ReconcileGapsArrived"]) == (
        1, 1, 1
    )  # fmt: skip

    async def check() -> None:
        backend = reads(options)
        await backend.resources.start()
        try:
            (gap,) = (await backend.github.list_gaps()).items
            assert (gap.delivery_id, gap.state, gap.requests) == (lost.guid, GapState.ARRIVED, 1)
            recorded = await backend.reads.get_delivery(lost.guid)
            assert recorded is not None
            assert (recorded.status, recorded.release_id) == ("processed", 801)
        finally:
            await backend.resources.close()

    run(check())


def test_the_github_sync_polls_a_tracked_repository_whose_release_reaches_dynamodb(
    deployment: dict[str, Any], fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, counted: dict[str, float]
) -> None:
    fake, options = fake_github, deployment["options"]
    name = "octo-org/tracked"
    published = fake.add_release(name, "v2.0.0", body="Second major release.")
    with_github(deployment, fake, monkeypatch, track_repositories=name)
    assert first_poll_at(repository_key(name), now=0, interval=600) > 60  # its slot is well into the interval

    first = github_sync.handler({}, LambdaContext())
    assert (first["reconcile"], first["track"], first["polls"]) == ("off", "done", 0)  # tracked, not due yet

    async def come_due() -> None:  # the time its slot comes, without waiting for it
        backend = reads(options)
        await backend.resources.start()
        try:
            record = await backend.github.get_tracked(repository_key(name))
            assert record is not None
            await backend.github.save_tracked(dataclasses.replace(record, next_poll_at=time.time() - 1))
        finally:
            await backend.resources.close()

    run(come_due())
    second = github_sync.handler({}, LambdaContext())
    assert (second["polls"], second["releases"], second["not_modified"], second["poll_errors"]) == (1, 1, 0, 0)
    assert process_inbox(deployment, 1) == {"batchItemFailures": []}  # the polled release, from the inbox on

    run(come_due())
    third = github_sync.handler({}, LambdaContext())
    assert (third["polls"], third["releases"], third["not_modified"]) == (1, 0, 1)  # 304: no rate limit spent
    assert (counted["ReleasePolls"], counted["ReleasesPolled"], counted["ReleasePollsNotModified"]) == (2, 1, 1)

    async def check() -> None:
        backend = reads(options)
        await backend.resources.start()
        try:
            found = await backend.reads.get_release(published["id"])
            assert found is not None
            assert [entry.action for entry in found.record.history] == ["published"]
            assert all(is_polled(entry.delivery_id) for entry in found.record.history)
            assert found.record.content.body == "Second major release."
        finally:
            await backend.resources.close()

    run(check())
