"""Hostile release notes never stall the event loop: while `ghingest serve` renders 125,000 `[` (seconds of pure
Python, and once on the event loop), `/healthz` on the same process keeps answering at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, post_webhook, release, signed, wait_until
from tests.e2e.conftest import ServeProcess

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_NOTES = "[" * 125_000  # GitHub's maximum release body length, all of it link-label openers
HEALTHZ_BOUND = 0.2
HEALTHZ_CEILING = 1.0
RENDER_BUDGET = 0.6


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    # A budget below what the brackets take (about 0.9 s of CPU on a fast machine, seconds on a slow one) and above
    # the overlap the probes need: the render always runs past it, on any machine, and ends as plain text.
    process = ServeProcess(tmp_path, GHINGEST_NOTES_RENDER_BUDGET=str(RENDER_BUDGET))
    yield process
    process.stop()


def test_healthz_answers_while_hostile_notes_render(serve: ServeProcess) -> None:
    serve.start()
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        assert post_webhook(client, signed(release(release_id=76, tag="v-plain"), delivery_id="plain-1")).is_success
        payload = release(release_id=77, tag="v-brackets", body=HOSTILE_NOTES)
        assert post_webhook(client, signed(payload, delivery_id="brackets-1")).status_code == 202
        wait_until(lambda: client.get("/api/releases/77", headers=AUTH).status_code == 200)
        assert client.get("/login", params={"token": TOKEN}).status_code == 303  # a session cookie for the page
        # The first page a process renders compiles its templates (once, on the loop): not what is measured here.
        assert client.get("/releases/76").status_code == 200

        pages: list[httpx.Response] = []
        viewer = threading.Thread(target=lambda: pages.append(client.get("/releases/77")))
        with httpx.Client(base_url=serve.url, timeout=30) as prober:
            started = time.monotonic()
            viewer.start()
            latencies = []
            while viewer.is_alive():
                sent = time.monotonic()
                assert prober.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - sent)
            viewed_in = time.monotonic() - started
        viewer.join()

    assert viewed_in > 0.5, "the page came back too soon for the probes to overlap its rendering"
    assert len(latencies) >= 10
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95)]
    # Rendered on the event loop, every probe during the render waits for all of it (seconds). On its own thread,
    # a probe waits for the GIL (5 ms slices) and the OS scheduler only: on a machine shared with other work, a rare
    # probe still waits a few hundred ms for a CPU, hence the 95th percentile, and a ceiling well under a render.
    assert p95 < HEALTHZ_BOUND, (p95, latencies[-5:], viewed_in, len(latencies))
    assert latencies[-1] < HEALTHZ_CEILING, (latencies[-5:], viewed_in, len(latencies))
    (page,) = pages
    assert page.status_code == 200
    assert '<pre class="notes-plain">' in page.text  # past the budget: shown as plain text
    assert "[[[[" in page.text
