"""The scale-out profile as it is deployed: `ghingest receiver`, `worker`, `forwarder` and `dashboard` processes on
PostgreSQL (a server of the test's own, so that it can be killed) and a 3-node NATS JetStream cluster (R3), each
failure of docs/operations.md provoked for real: a NATS node killed with SIGKILL mid-load, the whole cluster down,
a worker killed mid-batch, PostgreSQL killed and restarted mid-load, two forwarders on one queue. After each,
every delivery that got a 2xx is processed exactly once, and the forwards are delivered once each.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import post_webhook, release, signed, wait_until
from tests.destinations import Destination, routes_toml
from tests.e2e.conftest import GHINGEST, ServeProcess
from tests.nats_cluster import NatsCluster
from tests.pg_server import PrivatePostgres

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    nats = NatsCluster(tmp_path_factory.mktemp("nats"))
    nats.start()
    yield nats
    nats.stop()


@dataclass
class Stack:
    """One deployment: a database of its own on the test's server, a stream of its own on the cluster."""

    workdir: Path
    postgres: PrivatePostgres
    env: dict[str, str]
    database_url: str
    listening: list[ServeProcess] = field(default_factory=list)
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def serve(self, command: str, **env: str) -> ServeProcess:
        process = ServeProcess(self.workdir, command=command, **{**self.env, **env})
        process.start()
        self.listening.append(process)
        return process

    def run(self, role: str, **env: str) -> subprocess.Popen[bytes]:
        env = {**ServeProcess(self.workdir, **self.env).env, **env}
        with (self.workdir / f"{role}-{len(self.background)}.log").open("ab") as log:
            process = subprocess.Popen(
                [GHINGEST, role], cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.background.append(process)
        return process

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database_url, connect_timeout=2) as conn:
            return list(conn.execute(sql, args).fetchall())

    def processed(self, ids: set[str]) -> Counter[str]:
        """How many processed events each of `ids` has (0 while the database is down)."""
        try:
            rows = self.query("SELECT delivery_id FROM events WHERE status = 'processed'")
        except psycopg.OperationalError:
            return Counter()
        return Counter(str(row[0]) for row in rows if row[0] in ids)

    def assert_each_processed_once(self, acknowledged: set[str], timeout: float = 90) -> None:
        wait_until(lambda: set(self.processed(acknowledged)) >= acknowledged, timeout=timeout, interval=0.2)
        deliveries = Counter(str(r[0]) for r in self.query("SELECT delivery_id FROM deliveries"))
        events = self.processed(acknowledged)
        assert all(deliveries[d] == 1 for d in acknowledged), "a delivery was recorded twice"
        assert all(events[d] == 1 for d in acknowledged), "a delivery was processed into two events"

    def close(self) -> None:
        for process in self.background:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.background:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for serve in self.listening:
            serve.stop()


@pytest.fixture
def stack(tmp_path: Path, postgres: PrivatePostgres, cluster: NatsCluster) -> Iterator[Stack]:
    name = f"t_{secrets.token_hex(4)}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    database_url = postgres.url.rsplit("/", 1)[0] + f"/{name}"
    env = {
        "GHINGEST_DATABASE_URL": database_url,
        "GHINGEST_BUS_URL": ",".join(cluster.urls),
        "GHINGEST_BUS_STREAM": f"S{name}",
        "GHINGEST_BUS_REPLICAS": "3",
        "GHINGEST_BUS_MAX_BYTES": str(256 * 2**20),  # the test cluster's file store holds several such streams
        "GHINGEST_BUS_PUBLISH_TIMEOUT": "2",
        "GHINGEST_WORKER_LEASE_SECONDS": "3",
        "GHINGEST_WORKER_RETRY_BASE_DELAY": "0.2",
        "GHINGEST_FORWARD_POLL_INTERVAL": "0.2",
        "GHINGEST_DATA_DIR": str(tmp_path / "data"),
    }
    deployment = Stack(tmp_path, postgres, env, database_url)
    upgrade = deployment.serve("receiver")  # the first process applies the migrations; the others need not
    deployment.listening.remove(upgrade)
    upgrade.stop()
    yield deployment
    deployment.close()
    with contextlib.suppress(psycopg.Error), psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Load:
    """Threads posting signed releases round-robin to the receivers until stopped; what got a 2xx, and how many
    other answers came back."""

    def __init__(self, urls: list[str], *, threads: int = 6, prefix: str = "so") -> None:
        self.urls = urls
        self.prefix = prefix
        self.acknowledged: set[str] = set()
        self.statuses: Counter[int] = Counter()
        self.transport_errors = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._post, args=(i,), daemon=True) for i in range(threads)]

    def _post(self, worker: int) -> None:
        clients = [httpx.Client(base_url=url, timeout=10) for url in self.urls]
        n = 0
        while not self.stopping.is_set():
            n += 1
            delivery_id = f"{self.prefix}-{worker}-{n}-{secrets.token_hex(3)}"
            request = signed(release(release_id=5000 + n % 40, tag=f"v{worker}.{n}"), delivery_id=delivery_id)
            try:
                response = post_webhook(clients[n % len(clients)], request)
            except httpx.TransportError:
                with self.lock:
                    self.transport_errors += 1
                continue
            with self.lock:
                self.statuses[response.status_code] += 1
                if response.status_code in (200, 202):
                    self.acknowledged.add(delivery_id)
        for client in clients:
            client.close()

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def until(self, predicate: Callable[[], bool], timeout: float = 60) -> None:
        wait_until(predicate, timeout=timeout, interval=0.05)


def test_a_nats_node_killed_mid_load_loses_nothing_and_receivers_keep_answering(
    stack: Stack, cluster: NatsCluster
) -> None:
    receivers = [stack.serve("receiver") for _ in range(2)]
    for _ in range(2):
        stack.run("worker")
    with Load([r.url for r in receivers]) as load:
        load.until(lambda: load.count() >= 200)
        cluster.kill(0)
        at_kill = load.count()
        load.until(lambda: load.count() >= at_kill + 200)  # the two other nodes keep a quorum
        cluster.start_node(0)
        at_restart = load.count()
        load.until(lambda: load.count() >= at_restart + 100)
    stack.assert_each_processed_once(load.acknowledged)
    assert load.statuses[202] >= at_restart + 100
    print(f"acknowledged={len(load.acknowledged)} answers={dict(load.statuses)} errors={load.transport_errors}")


def test_the_whole_cluster_down_answers_503_with_retry_after_and_recovers(stack: Stack, cluster: NatsCluster) -> None:
    receiver = stack.serve("receiver")
    dashboard = stack.serve("dashboard")
    stack.run("worker")
    with httpx.Client(base_url=receiver.url, timeout=15) as client:
        assert post_webhook(client, signed(release(release_id=7001), delivery_id="before-outage")).status_code == 202
        cluster.kill_all()
        try:
            started = time.monotonic()
            response = post_webhook(client, signed(release(release_id=7002), delivery_id="during-outage"))
            assert response.status_code == 503
            assert int(response.headers["retry-after"]) > 0
            assert response.json()["error"]
            assert time.monotonic() - started < 9, "answered after GitHub's 10 s timeout"
            assert client.get("/readyz").status_code == 503
            assert httpx.get(f"{dashboard.url}/readyz").status_code == 200, "the dashboard needs no bus"
            assert client.get("/metrics").status_code == 200, "an outage must not hide the counters that show it"
        finally:
            cluster.start_all()
        recovered = wait_until(
            lambda: (
                post_webhook(client, signed(release(release_id=7003), delivery_id="after-outage")).status_code
                in (200, 202)
            ),
            timeout=60,
            interval=0.5,
        )
        assert recovered
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30, interval=0.2)
    stack.assert_each_processed_once({"before-outage", "after-outage"})
    assert stack.processed({"during-outage"})["during-outage"] == 0, "a 503 delivery was stored behind our back"


def test_a_worker_killed_mid_batch_has_its_deliveries_redelivered_and_processed_once(stack: Stack) -> None:
    receiver = stack.serve("receiver")
    with Load([receiver.url], prefix="backlog") as load:
        load.until(lambda: load.count() >= 600)
    doomed = stack.run("worker", GHINGEST_WORKER_BATCH_SIZE="50")
    wait_until(lambda: sum(stack.processed(load.acknowledged).values()) >= 50, timeout=60, interval=0.05)
    doomed.send_signal(signal.SIGKILL)  # mid-backlog: it holds claimed, unsettled deliveries
    doomed.wait(timeout=10)
    stack.run("worker")
    stack.assert_each_processed_once(load.acknowledged)


def test_postgres_killed_and_restarted_mid_load_loses_nothing_and_everything_is_forwarded(
    stack: Stack, postgres: PrivatePostgres
) -> None:
    with Destination() as destination:
        routes = stack.workdir / "routes.toml"
        route = {"name": "releases", "events": ["release"], "destinations": ["ci"]}
        routes.write_text(routes_toml({"ci": {"url": destination.url, "secret": "destination-secret"}}, [route]))
        receivers = [stack.serve("receiver") for _ in range(2)]
        for _ in range(2):
            stack.run("worker", GHINGEST_ROUTES_FILE=str(routes))
        stack.run("forwarder", GHINGEST_ROUTES_FILE=str(routes))
        with Load([r.url for r in receivers], prefix="pgdown") as load:
            load.until(lambda: len(destination.delivery_ids()) >= 100)
            postgres.kill()  # the inbox is on NATS: receivers keep acknowledging while the store is down
            at_kill = load.count()
            load.until(lambda: load.count() >= at_kill + 100)
            postgres.start()
            at_restart = load.count()
            load.until(lambda: load.count() >= at_restart + 100)
        stack.assert_each_processed_once(load.acknowledged)
        wait_until(lambda: destination.delivery_ids() >= load.acknowledged, timeout=90, interval=0.2)


def test_two_forwarders_and_two_workers_deliver_each_forward_once(stack: Stack) -> None:
    with Destination() as destination:
        routes = stack.workdir / "routes.toml"
        route = {"name": "releases", "events": ["release"], "destinations": ["ci"]}
        routes.write_text(routes_toml({"ci": {"url": destination.url, "secret": "destination-secret"}}, [route]))
        receiver = stack.serve("receiver")
        with Load([receiver.url], prefix="fwd") as load:
            load.until(lambda: load.count() >= 300)
        for role in ("worker", "worker", "forwarder", "forwarder"):
            stack.run(role, GHINGEST_ROUTES_FILE=str(routes))
        wait_until(lambda: destination.delivery_ids() >= load.acknowledged, timeout=90, interval=0.2)
        stack.assert_each_processed_once(load.acknowledged)
        with destination.lock:
            sent = Counter(r.headers.get("x-github-delivery", "") for r in destination.received)
        assert max(sent.values()) == 1, "a forward job attempt was delivered twice"
        jobs = Counter(str(r[0]) for r in stack.query("SELECT delivery_id FROM forward_jobs"))
        assert all(n == 1 for n in jobs.values()), "two workers created a delivery's forward jobs twice"


@pytest.mark.parametrize("bus", ["nats", "none"], ids=["postgres+nats", "postgres"])
def test_a_release_received_by_one_process_is_live_on_a_dashboard_served_by_another(stack: Stack, bus: str) -> None:
    if bus == "none":  # the PostgreSQL-only profile: the inbox in PostgreSQL
        stack.env.pop("GHINGEST_BUS_URL")
    receiver = stack.serve("receiver")
    stack.run("worker")
    dashboard = stack.serve("dashboard")
    seen = threading.Event()
    ready = threading.Event()

    def follow() -> None:
        headers = {"Authorization": f"Bearer {dashboard.env['GHINGEST_API_TOKENS']}"}
        with httpx.stream("GET", f"{dashboard.url}/live", headers=headers, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("event: hello"):
                    ready.set()
                if '"ref":"live-across"' in line.replace(" ", ""):
                    seen.set()
                    return

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    assert ready.wait(15)
    started = time.monotonic()
    with httpx.Client(base_url=receiver.url, timeout=10) as client:
        response = post_webhook(client, signed(release(release_id=8801, tag="v8.8.1"), delivery_id="live-across"))
        assert response.status_code == 202
    assert seen.wait(15), "the dashboard never saw the event"
    print(f"live on another process after {(time.monotonic() - started) * 1000:.0f} ms")
    token = dashboard.env["GHINGEST_API_TOKENS"]
    releases = httpx.get(f"{dashboard.url}/api/releases", headers={"Authorization": f"Bearer {token}"}).json()
    assert [r["tag"] for r in releases["items"]] == ["v8.8.1"]
