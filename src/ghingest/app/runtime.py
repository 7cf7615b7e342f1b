"""Wiring: open the backend (its ports) and build the application's parts from validated settings; run their
background tasks. Nothing here names a backend: `ghingest.adapters.factory.open_backend` does."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from ghingest.adapters.factory import UnsupportedBackend, open_backend, open_github_api
from ghingest.app.credentials import Credential, api_tokens, webhook_secrets
from ghingest.app.leases import Lease, holder_id
from ghingest.app.metrics import Metrics
from ghingest.app.offload import Offload
from ghingest.app.receiver import WebhookReceiver
from ghingest.app.rejections import RejectionRecorder
from ghingest.app.routes_config import Routes, TransportDefaults
from ghingest.app.settings import ConfigError, Settings
from ghingest.core.github_hooks import HookRef
from ghingest.core.reconcile import ReconcilePolicy
from ghingest.core.retry import RetryPolicy
from ghingest.core.routing import EMPTY_TABLE, RouteTable
from ghingest.ports.backend import Backend
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.github_api import GitHubApi, RequestRecord

if TYPE_CHECKING:  # imported where they are built: a process (a receiver Lambda) may run neither
    from ghingest.app.forwarder import Forwarder
    from ghingest.app.hook_allowlist import HookAllowlist
    from ghingest.app.reconciler import Reconciler
    from ghingest.app.tracker import ReleaseTracker
    from ghingest.app.worker import Worker

WORKER = "worker"
FORWARDER = "forwarder"
ROLES = frozenset({WORKER, FORWARDER})


@dataclass
class Runtime:
    settings: Settings
    backend: Backend
    metrics: Metrics
    webhook_secrets: Credential
    api_tokens: Credential
    run_worker: bool = True  # run the background roles (`roles`) in this process
    roles: frozenset[str] = frozenset({"worker", "forwarder"})  # of WORKER, FORWARDER
    clock: Clock = SYSTEM_CLOCK
    routes: Routes | None = None  # the forwarding route table in force (None: built from settings at start)
    receiver_offload: Offload = field(default_factory=Offload)  # verifies large bodies away from the event loop
    # The webhook route's source allow-list, built by `receiver(allowlist=True)` (None: none configured), refreshed
    # by `start` while this process serves.
    hook_allowlist: HookAllowlist | None = None
    # What the webhook route refused, buffered for the rejected-requests log: built with the first `receiver()`,
    # flushed by `start`'s task while this process serves (a Lambda handler flushes it itself).
    rejections: RejectionRecorder | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)  # `begin_shutdown` was called
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _github: GitHubApi | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        run_worker: bool = True,
        roles: frozenset[str] = ROLES,
        generate_credentials: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Runtime:
        try:
            backend = open_backend(settings, clock=clock)
        except UnsupportedBackend as exc:
            raise ConfigError(str(exc)) from None
        metrics = Metrics()
        return cls(
            settings=settings,
            backend=backend,
            clock=clock,
            metrics=metrics,
            # An invalid route file raises RoutesError.
            routes=Routes(settings.routes_file, metrics=metrics, defaults=TransportDefaults.from_settings(settings)),
            webhook_secrets=webhook_secrets(settings, generate=generate_credentials),
            api_tokens=api_tokens(settings, generate=generate_credentials),
            run_worker=run_worker,
            roles=roles,
            receiver_offload=Offload(inline_bytes=settings.offload_bytes),
        )

    def worker(self) -> Worker:
        from ghingest.app.worker import Worker

        s = self.settings
        return Worker(
            self.backend.inbox,
            self.backend.store,
            metrics=self.metrics,
            clock=self.clock,
            retry=RetryPolicy(max_attempts=s.worker_max_attempts, base_delay=s.worker_retry_base_delay),
            batch_size=s.worker_batch_size,
            batch_bytes=s.worker_batch_bytes,
            offload=Offload(inline_bytes=s.offload_bytes),
            poll_interval=s.worker_poll_interval,
            lease_seconds=s.worker_lease_seconds,
            routes=self.route_table,
        )

    def receiver(self, *, allowlist: bool = False) -> WebhookReceiver:
        """The webhook route (a bare ASGI callable), on this runtime's inbox, store and secrets. With `allowlist`
        (the listening commands, `serve` and `receiver`), behind the source allow-list the settings configure, if
        any: built once (its disk cache read) and kept as `hook_allowlist`, unless one was set already."""
        s = self.settings
        if allowlist and self.hook_allowlist is None:
            from ghingest.app.hook_allowlist import HookAllowlist

            self.hook_allowlist = HookAllowlist.from_settings(s, metrics=self.metrics, clock=self.clock)
        if self.rejections is None:
            self.rejections = RejectionRecorder(self.backend.rejections, metrics=self.metrics, clock=self.clock)
        return WebhookReceiver(
            self.backend.inbox,
            self.backend.store,
            secrets=[secret.encode("utf-8") for secret in self.webhook_secrets.values],
            metrics=self.metrics,
            allow_sha1=s.allow_sha1_signatures,
            max_body_bytes=s.max_body_bytes,
            offload=self.receiver_offload,
            ack_timeout=s.ack_timeout,
            sources=self.hook_allowlist if allowlist else None,
            rejections=self.rejections,
        )

    def route_table(self) -> RouteTable:
        return EMPTY_TABLE if self.routes is None else self.routes.current()

    def forwarder(self) -> Forwarder:
        from ghingest.app.forwarder import Forwarder

        return Forwarder(
            self.backend.forwards,
            self.route_table,
            metrics=self.metrics,
            poll_interval=self.settings.forward_poll_interval,
            offload=Offload(inline_bytes=self.settings.offload_bytes),
        )

    def github(self) -> GitHubApi:
        """This process's GitHub REST client (built once, on first use)."""
        if self._github is None:
            try:
                self._github = open_github_api(self.settings, clock=self.clock, on_request=self._count_github)
            except UnsupportedBackend as exc:
                raise ConfigError(str(exc)) from None
        return self._github

    def _count_github(self, record: RequestRecord) -> None:
        self.metrics.github_requests.labels(record.route, str(record.status)).inc()
        limit = self._github.rate_limit if self._github is not None else None
        if limit is not None:
            self.metrics.github_rate_limit_remaining.labels(limit.resource or "core").set(limit.remaining)

    def reconciler(self, hooks: Sequence[HookRef] | None = None) -> Reconciler:
        from ghingest.app.reconciler import Reconciler

        s = self.settings
        return Reconciler(
            hooks=hooks if hooks is not None else [HookRef.parse(text) for text in s.reconcile_hooks],
            api=self.github(),
            state=self.backend.github,
            reads=self.backend.reads,
            policy=ReconcilePolicy(
                horizon=s.reconcile_horizon,
                min_age=s.reconcile_min_age,
                retry_after=s.reconcile_retry_after,
                max_requests=s.reconcile_max_requests,
            ),
            metrics=self.metrics,
            clock=self.clock,
        )

    def tracker(self) -> ReleaseTracker:
        from ghingest.app.tracker import ReleaseTracker

        s = self.settings
        return ReleaseTracker(
            api=self.github(),
            state=self.backend.github,
            inbox=self.backend.inbox,
            interval=s.track_interval,
            page_size=s.track_page_size,
            concurrency=s.track_concurrency,
            metrics=self.metrics,
            clock=self.clock,
        )

    async def _start_github_roles(self) -> None:
        """Reconciliation and release tracking, in the processes that process deliveries; of several processes on
        one store, one at a time runs each (a lease in the store)."""
        s = self.settings
        holder = holder_id()
        if s.reconcile_hooks and s.reconcile_interval > 0:
            lease = Lease(self.backend.github, "reconcile", holder=holder, clock=self.clock)
            await lease.renew()
            self._tasks.append(asyncio.create_task(lease.keep(self._stop), name="reconcile-lease"))
            run = self.reconciler().run(self._stop, interval=s.reconcile_interval, may_run=lease)
            self._tasks.append(asyncio.create_task(run, name="reconcile"))
        tracker = self.tracker()
        lease = Lease(self.backend.github, "track", holder=holder, clock=self.clock)
        if await lease.renew():
            await tracker.sync_config(s.track_repositories)
        self._tasks.append(asyncio.create_task(lease.keep(self._stop), name="track-lease"))
        self._tasks.append(asyncio.create_task(tracker.run(self._stop, may_run=lease), name="track"))

    @property
    def closing(self) -> asyncio.Event:
        """Set when the server begins to shut down (`begin_shutdown`), before it waits for open responses: what
        would keep a response open (a live stream) ends when it is set."""
        return self._closing

    def begin_shutdown(self) -> None:
        """The server stops accepting and waits for open responses (`app.listener.Listener`): end the long ones."""
        self._closing.set()

    async def start(self) -> None:
        await self.backend.resources.start()
        self._stop = asyncio.Event()
        self._closing = asyncio.Event()
        if self.hook_allowlist is not None:  # in every process that receives webhooks, whatever its roles
            self._tasks.append(asyncio.create_task(self.hook_allowlist.run(self._stop), name="hook-allowlist"))
        if self.rejections is not None:
            self._tasks.append(asyncio.create_task(self.rejections.run(self._stop), name="rejections"))
        if self.run_worker:
            if WORKER in self.roles:
                self._tasks.append(asyncio.create_task(self.worker().run(self._stop), name="worker"))
            if FORWARDER in self.roles:
                self._tasks.append(asyncio.create_task(self.forwarder().run(self._stop), name="forwarder"))
            if WORKER in self.roles:
                await self._start_github_roles()
            if self.routes is not None and self.routes.path is not None:
                interval = self.settings.routes_reload_interval
                self._tasks.append(asyncio.create_task(self.routes.watch(self._stop, interval), name="routes"))
                with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
                    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.routes.reload)

    async def stop(self) -> None:
        """Drain: the roles stop claiming and finish (or release) what they hold, within 10 s; then close."""
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=10)
        self._tasks.clear()
        self.receiver_offload.close()
        if self._github is not None:
            await self._github.aclose()
            self._github = None
        await self.backend.resources.close()


def runtime_of(connection: HTTPConnection) -> Runtime:
    """The runtime the application serves (set on `app.state` when the application is built)."""
    runtime: Runtime = connection.app.state.runtime
    return runtime
