"""What the terminal shows: no log line under a progress display, the ready banner's tunnel hint, and where the
sign-in page says the API token is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from ghingest.app.banner import is_loopback, ready_banner
from ghingest.app.credentials import Credential, token_whereabouts
from ghingest.app.logs import configure_logging, get_logger
from ghingest.app.settings import load_settings
from ghingest.app.terminal import bar, progress


def test_no_log_line_is_written_under_a_progress_display(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    log = get_logger("test.terminal")
    with progress(*bar("working")) as display:
        display.add_task("work", total=1)
        log.info("under.the.bar")
        log.warning("worth.seeing")
    log.info("after.the.bar")
    out, err = capsys.readouterr()
    assert "under.the.bar" not in out + err
    assert "worth.seeing" in err  # above the display, not on stdout under it
    assert "worth.seeing" not in out
    assert '"event":"after.the.bar"' in out  # afterwards, JSON lines on stdout again


def test_is_loopback() -> None:
    for url in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080", "http://a.localhost"):
        assert is_loopback(url), url
    for url in ("https://hooks.example.com", "http://10.0.0.5:8080", "https://abc.trycloudflare.com"):
        assert not is_loopback(url), url


def _ready(tmp_path: Path, **settings: object) -> str:
    console = Console(record=True, width=200)
    ready_banner(console, load_settings(data_dir=tmp_path, port=8123, **settings), receives_webhooks=True)
    return console.export_text()


def test_the_ready_banner_says_how_to_expose_a_loopback_webhook_url(tmp_path: Path) -> None:
    local = _ready(tmp_path)
    assert local.startswith("ghingest is ready: accepting connections on http://127.0.0.1:8123")
    assert "cloudflared tunnel --url http://127.0.0.1:8123" in local
    assert "ngrok http 8123" in local
    assert "Content type: application/json" in local
    assert 'README.md, "Connect GitHub"' in local
    public = _ready(tmp_path, public_url="https://hooks.example.com")
    assert "ghingest is ready" in public
    assert "tunnel" not in public


def test_the_sign_in_page_hint_says_where_the_token_is_kept_never_the_token() -> None:
    configured = token_whereabouts(Credential(("a-token-value",), generated=False, source="configuration"))
    assert "GHINGEST_API_TOKENS" in configured
    assert "a-token-value" not in configured
    kept = token_whereabouts(Credential(("a-token-value",), generated=True, source="/srv/data/api-token"))
    assert "/srv/data/api-token" in kept
    assert "a-token-value" not in kept
    assert "GHINGEST_API_TOKENS" in token_whereabouts(Credential((), generated=False, source="none"))
