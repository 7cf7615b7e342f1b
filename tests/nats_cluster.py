"""A real 3-node NATS JetStream cluster of `nats-server` processes on free loopback ports, for tests.

Each node gets a client port, a cluster (route) port, a monitoring port and a store directory of its own, and
`max_payload` raised as in `deploy/nats/` (a 25 MiB GitHub body is published whole). `start()` waits, by polling
with a deadline, until every running node answers `/healthz` (JetStream up and current with the meta leader) and
the JetStream API answers through a client; `kill(i)` is `kill -9`, `start_node(i)` brings the node back on the
same ports and store, `kill_all()`/`start_all()` take the whole cluster down and up.

`shared_cluster()` is one cluster per test process, started on first use and stopped at exit: contract tests
and non-destructive integration tests use it, each with a stream of its own (`unique_name`). Tests that kill nodes
start a cluster of their own (`NatsCluster(tmp_path)`), so that they never disturb the others.

Without `nats-server` (PATH, /usr/sbin, or `GHINGEST_TEST_NATS_SERVER`) a test skips, or fails when `CI` is set.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ghingest.adapters.nats.backend import run_in_thread

MAX_PAYLOAD = 32 * 1024 * 1024  # as deploy/nats/common.conf
READY_TIMEOUT = 30.0


# Read once, at import: every test runs with the GHINGEST_* variables scrubbed (tests/conftest.py).
_EXPLICIT_BINARY = os.environ.get("GHINGEST_TEST_NATS_SERVER")


def nats_server_binary() -> str | None:
    explicit = _EXPLICIT_BINARY
    if explicit:
        return explicit
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/local/sbin")


def require_nats_server() -> str:
    """The `nats-server` binary, or skip (fail under CI) when the machine has none."""
    binary = nats_server_binary()
    if binary is None:
        reason = "no nats-server binary (PATH, /usr/sbin, or set GHINGEST_TEST_NATS_SERVER)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


_counter = itertools.count()


def unique_name(prefix: str = "T") -> str:
    """A stream name no other test uses (also a valid subject token)."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class Node:
    name: str
    client_port: int
    cluster_port: int
    http_port: int
    store: Path
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class NatsCluster:
    def __init__(
        self, base: Path, *, nodes: int = 3, max_payload: int = MAX_PAYLOAD, binary: str | None = None
    ) -> None:
        self.binary = binary or require_nats_server()
        self.base = base
        self.max_payload = max_payload
        self.cluster_name = f"ghtest-{uuid.uuid4().hex[:6]}"
        ports = _free_ports(3 * nodes)
        self.nodes = [
            Node(
                name=f"n{i + 1}",
                client_port=ports[3 * i],
                cluster_port=ports[3 * i + 1],
                http_port=ports[3 * i + 2],
                store=base / f"n{i + 1}" / "store",
                config=base / f"n{i + 1}" / "nats.conf",
                log=base / f"n{i + 1}" / "nats.log",
            )
            for i in range(nodes)
        ]

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(node.url for node in self.nodes)

    def _write_config(self, node: Node) -> None:
        node.store.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f"nats-route://127.0.0.1:{n.cluster_port}" for n in self.nodes if n is not node)
        cluster = (
            ""
            if len(self.nodes) == 1
            else f"cluster {{\n  name: {self.cluster_name}\n  listen: 127.0.0.1:{node.cluster_port}\n"
            f"  routes: [{routes}]\n}}\n"
        )
        node.config.write_text(
            f"""
server_name: {node.name}
listen: 127.0.0.1:{node.client_port}
http: 127.0.0.1:{node.http_port}
max_payload: {self.max_payload}
max_pending: 256MB
jetstream {{
  store_dir: "{node.store}"
  max_memory_store: 64MB
  max_file_store: 8GB
}}
{cluster}"""
        )

    # --- processes ------------------------------------------------------------------------------------------------

    def start(self, timeout: float = READY_TIMEOUT) -> NatsCluster:
        for node in self.nodes:
            self._launch(node)
        self.wait_ready(timeout)
        return self

    def _launch(self, node: Node) -> None:
        if node.running:
            return
        self._write_config(node)
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(
                [self.binary, "-c", str(node.config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self, index: int) -> None:
        """`kill -9` one node (its store stays: `start_node` brings it back)."""
        node = self.nodes[index]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(timeout=10)

    def start_node(self, index: int, timeout: float = READY_TIMEOUT) -> None:
        self._launch(self.nodes[index])
        self.wait_ready(timeout)

    def kill_all(self) -> None:
        for index in range(len(self.nodes)):
            self.kill(index)

    def start_all(self, timeout: float = READY_TIMEOUT) -> None:
        for node in self.nodes:
            self._launch(node)
        self.wait_ready(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(timeout=10)

    # --- readiness ------------------------------------------------------------------------------------------------

    def healthy(self, node: Node) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/healthz", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Every running node healthy and the JetStream API answering (a meta leader), within `timeout`."""
        deadline = time.monotonic() + timeout
        running = [node for node in self.nodes if node.running]
        while not all(self.healthy(node) for node in running):
            for node in running:
                if not node.running:
                    raise RuntimeError(f"nats-server {node.name} exited: {node.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the NATS cluster did not become healthy in time")
            time.sleep(0.05)
        run_in_thread(self._wait_jetstream(deadline))

    async def _wait_jetstream(self, deadline: float) -> None:
        import nats

        urls = [node.url for node in self.nodes if node.running]
        while True:
            try:
                nc = await nats.connect(
                    servers=urls, allow_reconnect=False, connect_timeout=1, max_reconnect_attempts=1
                )
                try:
                    await nc.jetstream().account_info()
                    return
                finally:
                    await nc.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


_shared: NatsCluster | None = None


def shared_cluster() -> NatsCluster:
    """One cluster for the whole test process, started on first use, stopped at exit."""
    global _shared
    if _shared is None:
        require_nats_server()
        base = Path(tempfile.mkdtemp(prefix="ghingest-nats-"))
        cluster = NatsCluster(base)
        atexit.register(_stop_shared, cluster, base)
        cluster.start()
        _shared = cluster
    return _shared


def _stop_shared(cluster: NatsCluster, base: Path) -> None:
    cluster.stop()
    with contextlib.suppress(OSError):
        shutil.rmtree(base)


def delete_stream(urls: tuple[str, ...], stream: str) -> None:
    """Delete a test's stream (its file-store reservation counts against the cluster's limit)."""

    async def delete() -> None:
        import nats

        nc = await nats.connect(servers=list(urls), allow_reconnect=False, connect_timeout=1, max_reconnect_attempts=1)
        try:
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()

    with contextlib.suppress(Exception):
        run_in_thread(delete())
