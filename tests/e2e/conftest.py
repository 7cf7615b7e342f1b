"""`ghingest` as a real subprocess: started from its console script, stopped with SIGTERM or SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, TOKEN, free_port

GHINGEST = str(Path(sys.executable).with_name("ghingest"))


class ServeProcess:
    """`ghingest serve` (or another listening command: `receiver`, `dashboard`) as a subprocess in `workdir`."""

    def __init__(self, workdir: Path, *, command: str = "serve", **env: str) -> None:
        self.workdir = workdir
        self.command = command
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GHINGEST_")},
            "GHINGEST_PORT": str(self.port),
            "GHINGEST_WEBHOOK_SECRETS": SECRET,
            "GHINGEST_API_TOKENS": TOKEN,
            "GHINGEST_WORKER_POLL_INTERVAL": "0.1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self) -> ServeProcess:
        log = self.workdir / f"{self.command}-{self.port}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [GHINGEST, self.command], cwd=self.workdir, env=self.env, stdout=sink, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ghingest {self.command} exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"ghingest {self.command} did not become ready")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GHINGEST, *args], cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path)
    yield process
    process.stop()
