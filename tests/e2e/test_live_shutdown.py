"""Stopping a listening process with dashboards open: SIGTERM ends every live stream at once (each gets `bye`),
and the process exits 0 within 2 s, without a traceback (docs/adr/0026-live-forwards-and-shutdown.md)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN
from tests.e2e.conftest import ServeProcess

pytestmark = pytest.mark.slow

CLIENTS = 10
EXIT_WITHIN = 2.0  # seconds from SIGTERM to the exit


class LiveClient(threading.Thread):
    """One open dashboard: follows `/live` until the stream ends, noting the events it got."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.following = threading.Event()
        self.events: list[str] = []
        self.ended_at: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.stream("GET", f"{self.url}/live", headers=headers, timeout=30) as response:
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        self.events.append(line.removeprefix("event: "))
                        self.following.set()
        except httpx.HTTPError as exc:  # a stream cut short, not ended
            self.error = exc
        self.ended_at = time.monotonic()


@pytest.mark.parametrize("command", ["serve", "dashboard"])
def test_sigterm_with_open_live_streams_ends_them_and_exits_at_once(tmp_path: Path, command: str) -> None:
    process = ServeProcess(tmp_path, command=command).start()
    assert process.process is not None
    clients = [LiveClient(process.url) for _ in range(CLIENTS)]
    try:
        for client in clients:
            client.start()
        for client in clients:
            assert client.following.wait(15), "a live stream did not start"
        signalled = time.monotonic()
        process.process.send_signal(signal.SIGTERM)
        returncode = process.process.wait(timeout=15)
        took = time.monotonic() - signalled
        for client in clients:
            client.join(timeout=5)
    finally:
        process.stop()
    output = process.output()
    assert "Traceback" not in output, output
    assert returncode == 0, output
    assert took < EXIT_WITHIN, f"exit took {took:.2f} s"
    for client in clients:
        assert not client.is_alive(), "a live stream is still open"
        assert client.error is None, client.error
        assert (client.events[0], client.events[-1]) == ("hello", "bye"), client.events
        assert client.ended_at is not None
        assert client.ended_at - signalled < EXIT_WITHIN
