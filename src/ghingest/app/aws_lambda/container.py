"""What one Lambda container keeps across invocations: settings, the secrets from Secrets Manager (cached, so that
a rotation takes effect within `GHINGEST_AWS_SECRETS_CACHE_SECONDS`), the runtime (the backend's clients are made
once), and one event loop that every invocation runs on (Mangum's and ours: `asyncio.set_event_loop`).

The secret is a JSON document: `{"webhook_secrets": [...], "api_tokens": [...], "session_secret": "...",
"destination_secrets": {"CI_WEBHOOK_SECRET": "..."}}`. Several webhook secrets verify at once, as in every profile,
so a rotation adds the new secret, then drops the old one. `destination_secrets` are the variables that the route
file's `secret_env` names (a destination's signing secret, its proxy password): they are put in this process's
environment before the routes are read, so that no secret ships inside the code asset. The GitHub sync's
credentials are optional: `"github_token": "..."`, or `"github_app_private_key": "-----BEGIN ..."` (the PEM text;
the App's id is the plain setting `GHINGEST_GITHUB_APP_ID`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import orjson

from ghingest.app.logs import configure_logging
from ghingest.app.runtime import Runtime
from ghingest.app.settings import ConfigError, Settings, load_settings

T = TypeVar("T")
SECRET_FIELDS = (
    "webhook_secrets",
    "api_tokens",
    "session_secret",
    "destination_secrets",
    "github_token",
    "github_app_private_key",
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def secret_overrides(document: bytes | str) -> dict[str, Any]:
    """Settings from the secret's JSON: only the fields it names, checked like any setting."""
    try:
        values = orjson.loads(document)
    except orjson.JSONDecodeError:
        raise ConfigError("GHINGEST_AWS_SECRETS_ARN: the secret is not a JSON object") from None
    if not isinstance(values, dict):
        raise ConfigError("GHINGEST_AWS_SECRETS_ARN: the secret is not a JSON object")
    unknown = sorted(set(values) - set(SECRET_FIELDS))
    if unknown:
        raise ConfigError(f"GHINGEST_AWS_SECRETS_ARN: unknown fields {', '.join(unknown)} (known: {SECRET_FIELDS})")
    overrides: dict[str, Any] = {}
    for name in ("webhook_secrets", "api_tokens"):
        if name in values:
            listed = values[name]
            if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
                raise ConfigError(f"GHINGEST_AWS_SECRETS_ARN: {name} must be a list of strings")
            overrides[name] = tuple(listed)
    if values.get("session_secret") is not None:
        overrides["session_secret"] = values["session_secret"]
    for name in ("github_token", "github_app_private_key"):
        if values.get(name) is None:
            continue
        if not isinstance(values[name], str) or not values[name].strip():
            raise ConfigError(f"GHINGEST_AWS_SECRETS_ARN: {name} must be a non-empty string")
        overrides[name] = values[name].strip() if name == "github_token" else values[name]
    return overrides


def destination_secrets(document: bytes | str) -> dict[str, str]:
    """The secret's `destination_secrets`: environment variable names (as `secret_env` names them) to values."""
    values = orjson.loads(document)
    named = values.get("destination_secrets") or {} if isinstance(values, dict) else {}
    if not isinstance(named, dict) or not all(
        isinstance(k, str) and _ENV_NAME.fullmatch(k) and isinstance(v, str) for k, v in named.items()
    ):
        raise ConfigError(
            "GHINGEST_AWS_SECRETS_ARN: destination_secrets must map environment variable names to strings"
        )
    return dict(named)


class Container:
    """Built at a function's cold start; `runtime()` is current for the secrets in force."""

    def __init__(self, *, fetch_secret: Callable[[Settings], bytes | str] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self._base = load_settings()
        configure_logging(self._base.log_level)
        self._fetch_secret = fetch_secret or _secrets_manager_value
        self._fetched_at = float("-inf")
        self._fingerprint: str | None = None
        self._runtime: Runtime | None = None
        self._built: dict[str, Any] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Close the runtime and the loop (a container's end, which Lambda never announces; tests call it)."""
        if self._runtime is not None:
            self.run(self._runtime.stop())  # its clients: the backend's, GitHub's, the offload pool
            self._runtime = None
        self._built.clear()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()
        asyncio.set_event_loop(None)

    def runtime(self) -> Runtime:
        """The runtime, rebuilt (with whatever was built from it) when the secret has changed."""
        settings = self._current_settings()
        if self._runtime is None:
            runtime = Runtime.build(settings, run_worker=False, generate_credentials=False)
            self.run(runtime.backend.resources.start())
            self._runtime = runtime
            self._built.clear()
        return self._runtime

    def built(self, name: str, build: Callable[[Runtime], T]) -> T:
        """`build(runtime)`, made once per runtime (an ASGI app, a worker, a forwarder)."""
        runtime = self.runtime()
        if name not in self._built:
            self._built[name] = build(runtime)
        made: T = self._built[name]
        return made

    def _current_settings(self) -> Settings:
        base = self._base
        if base.aws_secrets_arn is None:
            return base
        if self._runtime is not None and time.monotonic() - self._fetched_at < base.aws_secrets_cache_seconds:
            return self._runtime.settings
        document = self._fetch_secret(base)
        self._fetched_at = time.monotonic()
        fingerprint = hashlib.sha256(document if isinstance(document, bytes) else document.encode()).hexdigest()
        if fingerprint != self._fingerprint or self._runtime is None:
            self._fingerprint = fingerprint
            if self._runtime is not None:
                self.run(self._runtime.stop())
                self._runtime = None
            overrides = secret_overrides(document)
            os.environ.update(destination_secrets(document))
            return load_settings(**overrides)
        return self._runtime.settings


def _secrets_manager_value(settings: Settings) -> str:
    from ghingest.adapters.aws.clients import clients_for
    from ghingest.adapters.aws.options import options_from_settings

    client = clients_for(options_from_settings(settings)).secretsmanager
    try:
        value: str = client.get_secret_value(SecretId=settings.aws_secrets_arn)["SecretString"]
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", exc.__class__.__name__)
        raise ConfigError(f"GHINGEST_AWS_SECRETS_ARN: the secret cannot be read ({code})") from None
    return value


_current: Container | None = None


def current() -> Container:
    """This process's container, made at the first invocation (the cold start) of whichever function it runs."""
    global _current
    if _current is None:
        _current = Container()
    return _current


def reset() -> None:
    """Close and forget the container: the next invocation starts cold (tests: one deployment each)."""
    global _current
    if _current is not None:
        _current.close()
        _current = None


def aws_part(runtime: Runtime, port: str, capability: str) -> Any:
    """The backend's `port` (e.g. `inbox`), which must have the AWS profile's own `capability` (e.g. `adopt`: it
    takes an SQS event source's messages); a `ConfigError` on any other backend."""
    part = getattr(runtime.backend, port)
    if not hasattr(part, capability):
        raise ConfigError(f"this function needs the AWS backend (dynamodb://), not {runtime.backend.name}")
    return part


def failures(message_ids: Mapping[str, bool]) -> dict[str, list[dict[str, str]]]:
    """An SQS event source's partial batch response: the messages to keep (not settled) are reported failed."""
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid, settled in message_ids.items() if not settled]}
