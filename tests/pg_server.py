"""A PostgreSQL server of the test's own (initdb into a temporary folder, a free loopback port), so that a test can
kill it with SIGKILL or restart it mid-load without touching the machine's shared server.

Debian's server binaries are under /usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as root: as root the
server runs as the `postgres` user (`runuser`). When no server binaries are installed, the test fails in CI (where
they must be) and is skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import free_port


def _bin_dir() -> Path | None:
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.glob("*/bin") if (p / "postgres").exists()), key=lambda p: p.parent.name)
    return versions[-1] if versions else None


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class PrivatePostgres:
    """One server: `start()`, `kill()` (SIGKILL to the postmaster and every backend), `restart()`, `stop()`."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            message = "no PostgreSQL server binaries under /usr/lib/postgresql"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="ghingest-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        subprocess.run(_as_server_user([*initdb, "-E", "UTF8"]), check=True, capture_output=True)

    def start(self) -> PrivatePostgres:
        argv = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=on"]  # fmt: skip
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(_as_server_user(argv), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'server.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("postgres did not become ready")

    def _postmaster_pid(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (a crash: recovery replays the WAL on the next start)."""
        pid = self._postmaster_pid()
        if pid is not None:
            children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
            for child in [pid, *map(int, children.stdout.split())]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 10  # until nothing listens on the port any more
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Remove the server and its data (nothing is kept: no need for a clean shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
