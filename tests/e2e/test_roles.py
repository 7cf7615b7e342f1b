"""`ghingest worker` and `ghingest forwarder` as processes of their own: each runs its one role, and SIGTERM
drains it (it stops claiming, finishes or releases what it holds) and exits 0."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import orjson

from ghingest.adapters.sqlite.database import SqliteDatabase
from ghingest.app.samples import release_payload
from ghingest.core.delivery import ContentKind, IncomingDelivery
from tests.conftest import wait_until
from tests.destinations import Destination, routes_toml
from tests.e2e.conftest import GHINGEST, ServeProcess

COUNT = 10


def record(db_file: Path) -> None:
    database = SqliteDatabase(f"sqlite:///{db_file}")
    database.upgrade()

    async def append() -> None:
        await database.start()
        try:
            for n in range(COUNT):
                body = orjson.dumps(release_payload(release_id=900 + n))
                delivery = IncomingDelivery(f"role-{n}", "release", None, ContentKind.JSON, {}, body, 0)
                await database.inbox.append(delivery, received_at=time.time())
        finally:
            await database.close()

    asyncio.run(append())


def test_a_worker_and_a_forwarder_of_their_own_process_forward_everything_and_drain_on_sigterm(
    tmp_path: Path,
) -> None:
    db_file = tmp_path / "data" / "ghingest.db"
    record(db_file)
    with Destination() as destination:
        routes = tmp_path / "routes.toml"
        route = {"name": "releases", "events": ["release"], "destinations": ["ci"]}
        routes.write_text(routes_toml({"ci": {"url": destination.url, "secret": "destination-secret"}}, [route]))
        env = ServeProcess(tmp_path, GHINGEST_ROUTES_FILE=str(routes), GHINGEST_FORWARD_POLL_INTERVAL="0.1").env
        processes = {}
        for role in ("worker", "forwarder"):
            log = (tmp_path / f"{role}.log").open("wb")
            processes[role] = (subprocess.Popen([GHINGEST, role], cwd=tmp_path, env=env, stdout=log,
                                                stderr=subprocess.STDOUT), log)  # fmt: skip
        try:
            wait_until(lambda: len(destination.delivery_ids()) == COUNT, timeout=60)
        finally:
            for process, _log in processes.values():
                process.send_signal(signal.SIGTERM)
            codes = {role: process.wait(timeout=20) for role, (process, _log) in processes.items()}
            for _process, log in processes.values():
                log.close()
    assert codes == {"worker": 0, "forwarder": 0}
    for role in ("worker", "forwarder"):
        output = (tmp_path / f"{role}.log").read_text()
        assert f"{role} running on sqlite" in output
        assert f"{role} stopped" in output
        assert "Traceback" not in output
    assert destination.delivery_ids() == {f"role-{n}" for n in range(COUNT)}
