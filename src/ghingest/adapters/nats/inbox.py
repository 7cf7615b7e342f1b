"""The inbox on NATS JetStream: a file-storage stream the receivers publish to, one durable pull consumer that
every worker shares (docs/adr/0013-jetstream-inbox.md).

- `append` publishes with `Nats-Msg-Id` = the delivery id and waits for the PubAck, within `publish_timeout`:
  True when stored, False when the PubAck says `duplicate` (within the stream's duplicate window; outside it the
  store's unique delivery id still keeps one record per delivery). No connection, no responders, a timeout, a
  stream that refuses (full) → `StoreUnavailable`. A publish never waits in a client buffer for a reconnection
  (`connection.py`): one that failed was not sent, and never will be.
- `claim` pulls (`$JS.API.CONSUMER.MSG.NEXT`, `no_wait`: an idle claim returns in one round trip) up to `limit`
  messages and, with `max_bytes`, asks the server to stop before the budget (`max_bytes` of the pull request); a
  first message larger than the whole budget is then pulled alone. `attempts` = deliveries before this one (the
  message's delivery count - 1: a lease that ran out counts, unlike the SQL inboxes); `exhausted` on the last
  delivery the consumer allows (`max_deliver`). The lease is the consumer's `ack_wait`, set from
  `GHINGEST_WORKER_LEASE_SECONDS` when the consumer is created or updated: `lease_seconds` of a claim is not
  per claim.
- `settle`: DONE → `+ACK`, RETRY → `-NAK {"delay": retry_at - now}`, FAILED → `+TERM`, each as a request whose
  empty reply confirms the server applied it (a double ack: `depth` and the next claim see it). Settling a handle
  twice does nothing the second time; JetStream cannot tell a stale delivery from the current one, so a stale
  ack acks the message (its outcome is recorded: the worker settles after the store commits).
- `extend` → `+WPI` (the ack wait starts again). `requeue` publishes again under a fresh msg id.
- `depth` = the consumer's `num_pending` (not yet delivered) + `num_ack_pending` (delivered, not settled: claimed,
  or waiting for a nak's delay).
- `wait_for_work` leaves a pull request of one message waiting on the server (`expires` = the timeout); the
  message it brings is kept for the next claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from ghingest.adapters.nats import codec
from ghingest.adapters.nats.connection import Connection
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.errors import PayloadTooLarge, StoreUnavailable
from ghingest.core.processing import StoredDelivery
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.inbox import Claimed, InboxCapabilities, Settle, Settlement

log = structlog.get_logger("ghingest.nats")

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class JetStreamOptions:
    """The stream, the consumer and the client, as `open_nats_inbox` derives them from the settings."""

    servers: tuple[str, ...]
    stream: str = "GHINGEST_DELIVERIES"
    consumer: str = "ghingest-workers"
    replicas: int = 3
    publish_timeout: float = 4.0
    ack_wait: float = 15.0  # the lease (GHINGEST_WORKER_LEASE_SECONDS)
    max_deliver: int = 11  # GHINGEST_WORKER_MAX_ATTEMPTS + DELIVERY_MARGIN
    max_ack_pending: int = 20_000  # claimed or nak-delayed at once, over every worker
    duplicate_window: float = 3600.0  # seconds (docs/adr/0013-jetstream-inbox.md)
    max_bytes: int = 8 * GiB  # the backlog the stream holds; full → appends refused (503), nothing dropped
    max_msg_size: int = 32 * MiB  # a message (headers and body); the server's max_payload bounds it too
    connect_timeout: float = 2.0
    api_timeout: float = 5.0  # JetStream API calls and settle confirmations
    name: str = "ghingest"  # the connection's name (server monitoring)

    @property
    def subject_prefix(self) -> str:
        return self.stream

    @property
    def subjects(self) -> str:
        return f"{self.subject_prefix}.>"

    def stream_config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.stream,
            description="ghingest: verified GitHub webhook deliveries waiting to be processed",
            subjects=[self.subjects],
            retention=api.RetentionPolicy.WORK_QUEUE,  # a settled (acked or termed) delivery leaves the stream
            storage=api.StorageType.FILE,
            num_replicas=self.replicas,
            discard=api.DiscardPolicy.NEW,  # full: refuse new appends, never drop what was acknowledged
            max_bytes=self.max_bytes,
            max_msg_size=self.max_msg_size,
            duplicate_window=self.duplicate_window,
        )

    def consumer_config(self) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            durable_name=self.consumer,
            description="ghingest workers (shared)",
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            filter_subject=self.subjects,
            replay_policy=api.ReplayPolicy.INSTANT,
        )


PUBLISH_RETRY_MIN = 0.02  # seconds between tries of a publish the server did not take (doubling)
PUBLISH_RETRY_MAX = 0.5
CLAIM_WAIT = 0.1  # seconds an empty claim waits for a delivery the consumer's leader has not seen yet
DELIVERY_MARGIN = 3  # deliveries beyond the retry policy's attempts: claims that crashed a worker, never settled


@dataclass(eq=False, slots=True)
class _Claim:
    """A claim handle: the message's ack subject (`$JS.ACK.…`), its stream sequence and delivery count."""

    reply: str
    seq: int
    delivered: int
    settled: bool = False


@dataclass(eq=False)
class _Pull:
    """A pull request in flight, on a subscription of its own (a delivered message carries its stream subject,
    not the request's reply subject: only its subscription tells which request it answers). Done when its batch
    arrived or the server ended it (a status message: 404/408 nothing more, 409 budget or limits)."""

    batch: int
    received: int = 0
    status: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class NatsInbox:
    def __init__(self, options: JetStreamOptions, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.options = options
        self._clock = clock
        # Until the first connection the server's max_payload is unknown: the receiver's own cap applies, and a
        # body the server refuses is refused (413) at append.
        self.capabilities = InboxCapabilities(
            max_payload_bytes=None, requeue=True, visible_on_receipt=False, oldest_waiting=False
        )
        self._connection = Connection(
            options.servers, name=options.name, on_connect=self._on_connect, connect_timeout=options.connect_timeout
        )
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{options.stream}.{options.consumer}"
        self._ids = itertools.count(1)
        self._buffer: deque[Msg] = deque()  # delivered to this process, not yet claimed
        self._arrived = asyncio.Event()
        self._provisioned = False
        self._closed = False
        self._background: set[asyncio.Future[None]] = set()

    # --- resources ------------------------------------------------------------------------------------------------

    async def start(self, *, wait: float | None = None) -> None:
        self._closed = False
        await self._connection.start(wait=self.options.connect_timeout * 2 if wait is None else wait)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        client = self._connection.client
        if client is not None and self._buffer:  # hand back what was pulled but never claimed
            with contextlib.suppress(Exception):
                await asyncio.gather(*(client.publish(m.reply, b"-NAK") for m in self._buffer if m.reply))
                await client.flush(timeout=1)
        self._buffer.clear()
        await self._connection.close()

    async def _on_connect(self, client: Client) -> None:
        """A new connection: create or update the stream and consumer (once per process), and learn the server's
        max_payload."""
        if not self._provisioned:
            await provision(client, self.options)
            self._provisioned = True
        payload_room = client.max_payload - codec.HEADER_ROOM
        self.capabilities = InboxCapabilities(
            max_payload_bytes=max(0, payload_room), requeue=True, visible_on_receipt=False, oldest_waiting=False
        )

    async def _on_message(self, pull: _Pull, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is not None:
            if status != "100":  # not an idle heartbeat: the request is over
                pull.status = status
                pull.done.set()
            return
        self._buffer.append(msg)
        self._arrived.set()
        pull.received += 1
        if pull.received >= pull.batch:
            pull.done.set()

    # --- append ---------------------------------------------------------------------------------------------------

    async def append(self, delivery: IncomingDelivery, *, received_at: float) -> bool:
        headers = codec.incoming_headers(delivery, received_at=received_at)
        ack = await self._publish(codec.subject_token(delivery.event), delivery.body, headers)
        return not ack.duplicate

    async def _publish(self, token: str, body: bytes, headers: dict[str, str]) -> api.PubAck:
        """Publish and wait for the PubAck, within `publish_timeout`. A publish the server certainly did not
        take (no connection yet, or no responders: the stream has no leader during an election) is tried again
        until the deadline, under the same msg id; one that may have reached the stream (no PubAck in time) is
        not: it is `StoreUnavailable`, and if it was stored after all a redelivery is a duplicate."""
        if self._closed:
            raise StoreUnavailable("the NATS inbox is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.publish_timeout
        subject = f"{self.options.subject_prefix}.{token}"
        pause = PUBLISH_RETRY_MIN
        while True:
            client = await self._connection.current(deadline)
            if len(body) > client.max_payload - codec.HEADER_ROOM:
                # The server counts headers and body together, and closes the connection of a client that sends
                # more than max_payload: refuse it here, as `capabilities.max_payload_bytes` says.
                limit = client.max_payload - codec.HEADER_ROOM
                raise PayloadTooLarge(f"body exceeds the {limit} bytes the bus takes")
            try:
                ack = await client.jetstream().publish(
                    subject,
                    body,
                    timeout=max(0.001, deadline - loop.time()),
                    stream=self.options.stream,
                    headers=headers,
                )
            except nats.errors.MaxPayloadError:
                raise PayloadTooLarge(f"body exceeds the bus's {client.max_payload} bytes") from None
            except (nats.errors.TimeoutError, TimeoutError):
                raise StoreUnavailable(f"no PubAck within {self.options.publish_timeout} s") from None
            except nats.js.errors.NoStreamResponseError:
                reason = "no stream answered the publish (electing a leader, no quorum, or no stream)"
            except nats.js.errors.ServiceUnavailableError as exc:
                reason = f"JetStream is unavailable: {exc.description or exc.code}"
            except nats.js.errors.APIError as exc:  # full (maximum bytes exceeded), wrong stream, …
                raise StoreUnavailable(f"the stream refused the publish: {exc.description or exc.code}") from None
            except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError) as exc:
                reason = f"the connection was lost before the publish: {exc.__class__.__name__}"
            except (nats.errors.Error, OSError) as exc:
                raise StoreUnavailable(f"the publish failed: {exc.__class__.__name__}") from None
            else:
                if ack.stream != self.options.stream:
                    raise StoreUnavailable(f"the publish was stored by another stream ({ack.stream})")
                return ack
            if loop.time() + pause >= deadline:
                raise StoreUnavailable(reason)
            await asyncio.sleep(pause)  # a retry's backoff within the deadline
            pause = min(PUBLISH_RETRY_MAX, pause * 2)

    # --- claim ----------------------------------------------------------------------------------------------------

    async def claim(self, *, limit: int, lease_seconds: float, max_bytes: int | None = None) -> Sequence[Claimed]:
        if limit < 1:
            return []
        client = self._live()
        taken = self._take(limit, max_bytes)
        wanted = limit - len(taken)
        budget = None if max_bytes is None else max_bytes - sum(len(m.data) for m in taken)
        if wanted > 0 and (budget is None or budget > 0):
            status = await self._pull(client, wanted, max_bytes=budget)
            if not taken and not self._buffer:
                if status == "409" and budget is not None:
                    await self._pull(client, 1)  # the first message is larger than the whole budget: it alone
                else:
                    # Nothing yet: the consumer's leader may be a stream follower that has not applied the
                    # latest appends (a few ms behind the PubAck). Wait briefly for one, then take the rest.
                    await self._pull(client, 1, wait=CLAIM_WAIT)
                    if self._buffer and wanted > 1:
                        remaining = None if budget is None else budget - len(self._buffer[0].data)
                        if remaining is None or remaining > 0:
                            await self._pull(client, wanted - 1, max_bytes=remaining)
            taken += self._take(wanted, budget, at_least_one=not taken)
        taken.sort(key=lambda m: m.metadata.sequence.stream)
        claimed = []
        for msg in taken:
            claim = self._claimed(client, msg)
            if claim is not None:
                claimed.append(claim)
        return claimed

    def _take(self, limit: int, budget: int | None, *, at_least_one: bool = True) -> list[Msg]:
        """Up to `limit` buffered messages within `budget` bytes (at least one, if any, when `at_least_one`)."""
        taken: list[Msg] = []
        size = 0
        while self._buffer and len(taken) < limit:
            next_size = len(self._buffer[0].data)
            if budget is not None and size + next_size > budget and (taken or not at_least_one):
                break
            taken.append(self._buffer.popleft())
            size += next_size
        return taken

    def _claimed(self, client: Client, msg: Msg) -> Claimed | None:
        meta = msg.metadata
        delivered = meta.num_delivered or 1
        try:
            delivery = codec.stored_delivery(
                seq=meta.sequence.stream, headers=msg.headers, body=msg.data, attempts=delivered - 1
            )
        except codec.BadMessage as exc:
            # Not ghingest's: a message published to the stream's subjects by something else. Never processed,
            # never redelivered (term), and said so.
            log.error("nats.foreign_message", seq=meta.sequence.stream, subject=msg.subject, error=str(exc))
            task = asyncio.ensure_future(_quietly(client.publish(msg.reply, b"+TERM")))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return None
        handle = _Claim(msg.reply, meta.sequence.stream, delivered)
        return Claimed(delivery=delivery, handle=handle, exhausted=delivered >= self.options.max_deliver)

    async def _pull(
        self, client: Client, batch: int, *, max_bytes: int | None = None, wait: float | None = None
    ) -> str | None:
        """A pull request, `no_wait` (what is there now) or waiting up to `wait` seconds; wait for its batch or
        its end. The status that ended it (None: the batch is complete)."""
        request: dict[str, object] = {"batch": batch}
        if wait is None:
            request["no_wait"] = True
        else:
            request["expires"] = int(wait * 1e9)
        if max_bytes is not None:
            request["max_bytes"] = max_bytes
        grace = self.options.api_timeout + (wait or 0.0)
        pull = await self._request(client, request, grace=grace)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await pull.done.wait()
        return pull.status

    async def _request(self, client: Client, request: dict[str, object], *, grace: float) -> _Pull:
        """Send a pull request answered on a subscription of its own, which stays until the server ends the
        request (or `grace` seconds): a message that arrives after its caller stopped waiting is kept for the
        next claim, not lost to the ack wait."""
        pull = _Pull(int(str(request["batch"])))
        subject = f"{client.new_inbox()}.{next(self._ids)}"

        async def on_message(msg: Msg) -> None:
            await self._on_message(pull, msg)

        try:
            sub = await client.subscribe(
                subject, cb=on_message, pending_msgs_limit=1_000_000, pending_bytes_limit=1024 * MiB
            )
            await client.publish(self._next, json.dumps(request).encode(), reply=subject)
        except (nats.errors.Error, OSError) as exc:
            raise StoreUnavailable(f"the pull request failed: {exc.__class__.__name__}") from None

        async def reap() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await pull.done.wait()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

        task = asyncio.ensure_future(reap())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return pull

    # --- settle, extend, requeue ------------------------------------------------------------------------------------

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        requests: list[tuple[str, bytes]] = []
        now = self._clock.now()
        for settlement in settlements:
            claim = _handle(settlement.handle)
            if claim.settled:
                continue
            claim.settled = True
            if settlement.outcome is Settle.DONE:
                requests.append((claim.reply, b"+ACK"))
            elif settlement.outcome is Settle.FAILED:
                requests.append((claim.reply, b"+TERM"))
            else:
                delay = 0.0 if settlement.retry_at is None else settlement.retry_at - now
                payload = b"-NAK" if delay <= 0 else b'-NAK {"delay": %d}' % int(delay * 1e9)
                requests.append((claim.reply, payload))
        if requests:
            await self._confirm(requests, "settle")

    async def extend(self, handles: Sequence[object], *, lease_seconds: float) -> None:
        requests = [(claim.reply, b"+WPI") for claim in map(_handle, handles) if not claim.settled]
        if requests:
            await self._confirm(requests, "extend")

    async def _confirm(self, requests: Sequence[tuple[str, bytes]], what: str) -> None:
        """Send acks as requests and wait for the server's (empty) replies: applied when this returns. One that
        gets no reply is left to the ack wait: the delivery is redelivered, which the idempotent store absorbs."""
        client = self._live()
        timeout = self.options.api_timeout
        results = await asyncio.gather(
            *(client.request(reply, payload, timeout=timeout) for reply, payload in requests), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning(f"nats.{what}_unconfirmed", count=len(failed), error=failed[0].__class__.__name__)

    async def requeue(self, deliveries: Sequence[StoredDelivery]) -> int:
        count = 0
        generation = uuid.uuid4().hex[:12]
        for delivery in deliveries:  # in order: they are claimed in the order given
            headers = codec.requeue_headers(delivery, generation=generation)
            ack = await self._publish(codec.subject_token(delivery.event), delivery.body, headers)
            count += 0 if ack.duplicate else 1
        return count

    # --- waiting, depth, readiness ----------------------------------------------------------------------------------

    async def wait_for_work(self, timeout: float) -> None:
        if self._buffer or timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            client = await self._connection.current(deadline)
        except StoreUnavailable:
            return
        remaining = deadline - loop.time()
        if remaining <= 0.01:
            return
        self._arrived.clear()
        try:
            pull = await self._request(
                client, {"batch": 1, "expires": int(remaining * 1e9)}, grace=remaining + self.options.api_timeout
            )
        except StoreUnavailable:
            return
        arrived = asyncio.ensure_future(self._arrived.wait())
        ended = asyncio.ensure_future(pull.done.wait())
        try:
            await asyncio.wait({arrived, ended}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            arrived.cancel()
            ended.cancel()

    async def oldest_waiting_at(self) -> float | None:
        """Not known: a stream's messages carry no receipt time that a query could find the oldest of."""
        raise NotImplementedError("the JetStream inbox does not say when its oldest waiting delivery came")

    async def depth(self) -> int:
        client = self._live()
        try:
            js = client.jetstream(timeout=self.options.api_timeout)
            info = await js.consumer_info(self.options.stream, self.options.consumer)
            state = (await js.stream_info(self.options.stream)).state
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"the stream did not answer: {exc.__class__.__name__}") from None
        # The consumer's leader may be a stream follower a few appends behind the stream's leader (which sent the
        # PubAcks): count the messages it has not seen yet, i.e. those past its last one.
        seen_up_to = max(info.delivered.stream_seq if info.delivered else 0, state.first_seq - 1)
        unseen = max(0, state.last_seq - (seen_up_to + (info.num_pending or 0)))
        return (info.num_pending or 0) + (info.num_ack_pending or 0) + unseen

    async def ping(self) -> None:
        client = self._live()
        try:
            await client.jetstream(timeout=self.options.api_timeout).stream_info(self.options.stream)
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"the stream did not answer: {exc.__class__.__name__}") from None

    def _live(self) -> Client:
        if self._closed:
            raise StoreUnavailable("the NATS inbox is closed")
        client = self._connection.client
        if client is None:
            raise StoreUnavailable(f"not connected to NATS ({self._connection.last_error or 'connecting'})")
        return client


async def provision(client: Client, options: JetStreamOptions) -> None:
    """Create the stream and the consumer, or update them to `options` (idempotent)."""
    js = client.jetstream(timeout=options.api_timeout)
    config = options.stream_config()
    try:
        await js.stream_info(options.stream)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:  # created by another process meanwhile
            if exc.err_code != 10058:  # stream name already in use
                raise
    else:
        await js.update_stream(config)
    await js.add_consumer(options.stream, options.consumer_config())  # creates, or updates in place


async def _quietly(awaitable: object) -> None:
    with contextlib.suppress(Exception):
        await awaitable  # type: ignore[misc]


def _handle(handle: object) -> _Claim:
    if not isinstance(handle, _Claim):
        raise TypeError(f"not a claim handle of the NATS inbox: {type(handle).__name__}")
    return handle
