"""`ghingest dashboard` as a process: migrates, serves pages and the read API, and no webhook receiver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, free_port, wait_until


@pytest.mark.slow
def test_dashboard_command_serves_pages_and_api_but_no_receiver(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GHINGEST_")},
        "GHINGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}",
        "GHINGEST_DATA_DIR": str(tmp_path / "data"),
        "GHINGEST_API_TOKENS": TOKEN,
        "GHINGEST_WEBHOOK_SECRETS": "dashboard-only-secret",
        "GHINGEST_PORT": str(port),
    }
    cli = [sys.executable, "-c", "from ghingest.app.cli import main; main()"]
    process = subprocess.Popen(
        [*cli, "dashboard"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, timeout=20, interval=0.1)
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/").status_code == 303
            assert client.get("/login", params={"token": TOKEN}).status_code == 303
            assert client.get("/").status_code == 200
            assert client.get("/api/releases").status_code == 200
            assert client.post("/webhooks/github", content=b"{}").status_code == 404
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert b"Dashboard:" in output
