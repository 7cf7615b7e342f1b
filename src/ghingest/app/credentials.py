"""The webhook secrets and API tokens in force, and their generation on first start.

Signatures are always required. When no secret is configured, a strong random one is generated once, kept in
the data directory with mode 0600, and shown once, so that a first `make run` works without weakening anything.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ghingest.app.settings import ConfigError, Settings

WEBHOOK_SECRET_FILE = "webhook-secret"  # noqa: S105 - a file name, not a secret
API_TOKEN_FILE = "api-token"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True, slots=True)
class Credential:
    values: tuple[str, ...]
    generated: bool  # created by this start: show it once
    source: str  # where it came from, for messages (never the value)

    def __repr__(self) -> str:
        return f"Credential(values=<{len(self.values)} hidden>, generated={self.generated}, source={self.source!r})"


MIN_SECRET_CHARS = 8  # as for GHINGEST_WEBHOOK_SECRETS and GHINGEST_API_TOKENS (settings)


def _read_lines(path: Path, *, setting: str = "") -> tuple[str, ...]:
    """One secret per line; blank lines and `#` comments (indented or not) are skipped. A line too short to be a
    secret is an error naming the file and the line, never the value."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{setting + ': ' if setting else ''}cannot read {path}: {reason}") from None
    values = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"{setting + ': ' if setting else ''}{path} line {number}: a secret must be at least"
                f" {MIN_SECRET_CHARS} characters long"
            )
        values.append(line)
    return tuple(values)


def _generated(path: Path) -> Credential:
    if path.exists():
        return Credential(_read_lines(path), generated=False, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return Credential((value,), generated=True, source=str(path))


def webhook_secrets(settings: Settings, *, generate: bool) -> Credential:
    """Secrets from GHINGEST_WEBHOOK_SECRETS, then GHINGEST_WEBHOOK_SECRETS_FILE; else the generated one."""
    values = tuple(s.get_secret_value() for s in settings.webhook_secrets)
    if settings.webhook_secrets_file is not None:
        from_file = _read_lines(settings.webhook_secrets_file, setting="GHINGEST_WEBHOOK_SECRETS_FILE")
        if not from_file:
            raise ConfigError("GHINGEST_WEBHOOK_SECRETS_FILE: the file holds no secret")
        values += from_file
    if values:
        return Credential(values, generated=False, source="configuration")
    path = settings.data_dir / WEBHOOK_SECRET_FILE
    if not generate and not path.exists():
        raise ConfigError("GHINGEST_WEBHOOK_SECRETS: no webhook secret is configured")
    return _generated(path)


def api_tokens(settings: Settings, *, generate: bool) -> Credential:
    values = tuple(s.get_secret_value() for s in settings.api_tokens)
    if values:
        return Credential(values, generated=False, source="configuration")
    path = settings.data_dir / API_TOKEN_FILE
    if not generate and not path.exists():
        return Credential((), generated=False, source="none")
    return _generated(path)


def token_whereabouts(tokens: Credential) -> str:
    """Where the API token that signs in is kept, for the sign-in page (never the token itself)."""
    if tokens.source == "configuration":
        return "The API token is one of those in GHINGEST_API_TOKENS, set where this service is configured."
    if not tokens.values:
        return "No API token is configured yet: set GHINGEST_API_TOKENS, or start ghingest serve once to make one."
    return (
        "The API token is the one ghingest serve printed at its first start (with a sign-in link);"
        f" it is kept on the server in {tokens.source}."
    )


SESSION_SECRET_FILE = "session-secret"  # noqa: S105 - a file name, not a secret


def session_secret(settings: Settings) -> str:
    """The key that signs dashboard session cookies: GHINGEST_SESSION_SECRET, else one generated in the data dir.

    Every dashboard process of a deployment must share it (set it explicitly for the scale-out profile)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    return _generated(settings.data_dir / SESSION_SECRET_FILE).values[0]
