"""deploy/nats/ parses with the machine's nats-server (`-t`), with the 2.10-only `sync_interval` taken out for an
older server, and every node has the max_payload the inbox is sized for."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.nats_cluster import require_nats_server

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nats"


def _version(binary: str) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"v(\d+)\.(\d+)", out)
    assert match, out
    return int(match.group(1)), int(match.group(2))


@pytest.mark.parametrize("node", ["nats-1.conf", "nats-2.conf", "nats-3.conf"])
def test_each_node_config_is_valid(node: str, tmp_path: Path) -> None:
    binary = require_nats_server()
    for config in DEPLOY.glob("*.conf"):
        shutil.copy(config, tmp_path / config.name)
    common = tmp_path / "common.conf"
    assert "max_payload: 32MB" in common.read_text()
    if _version(binary) < (2, 10):
        common.write_text(re.sub(r"(?m)^\s*sync_interval:.*$", "", common.read_text()))
    result = subprocess.run([binary, "-t", "-c", str(tmp_path / node)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
