"""The route file (`GHINGEST_ROUTES_FILE`, TOML): validated into a `RouteTable`, and reloaded when it changes.

Every error names the destination or route (by its `name`, else its position) and the field, and never quotes a
value, so a secret cannot leak into a message. `secret_env` is read from the environment when the file is loaded.
A reload that fails keeps the running table; it is logged and counted (`ghingest_routes_reloads_total`).

A destination's `ca_bundle` (a PEM file, relative to the route file's folder) and `proxy` (`http://host:port`; `""`:
a direct connection) default to `GHINGEST_FORWARD_CA_BUNDLE` and `GHINGEST_FORWARD_PROXY` (`TransportDefaults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ghingest.app.forward_transport import check_ca_bundle, check_proxy
from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.app.settings import ConfigError, Settings
from ghingest.core.retry import RetryPolicy
from ghingest.core.routing import (
    EMPTY_TABLE,
    RESERVED_HEADERS,
    Destination,
    Route,
    RouteTable,
    RoutingError,
    compile_condition,
    compile_template,
)

ROUTES_FILE_ENV = "GHINGEST_ROUTES_FILE"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RoutesError(ConfigError):
    """The route file is invalid; `problems` lists each error, naming the destination or route and the field."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        super().__init__(f"{ROUTES_FILE_ENV} ({path}): " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class TransportDefaults:
    """What a destination that sets no `ca_bundle` or `proxy` gets (from the settings)."""

    ca_bundle: str | None = None  # for https:// destinations only
    proxy: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TransportDefaults:
        proxy = settings.forward_proxy.get_secret_value() if settings.forward_proxy is not None else None
        ca_bundle = str(settings.forward_ca_bundle) if settings.forward_ca_bundle is not None else None
        return cls(ca_bundle=ca_bundle, proxy=proxy or None)


NO_DEFAULTS = TransportDefaults()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Model):
    max_attempts: int = Field(default=10, ge=1, le=1000)
    base_delay: float = Field(default=1.0, gt=0, le=3600)
    max_delay: float = Field(default=600.0, gt=0, le=86_400)
    max_age: float | None = Field(default=86_400.0, gt=0)  # seconds since the first attempt
    jitter: float = Field(default=0.5, ge=0, le=1)


class DestinationConfig(_Model):
    name: str
    url: str
    secret: SecretStr | None = None
    secret_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0, le=300)
    concurrency: int = Field(default=4, ge=1, le=256)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    ca_bundle: str | None = None  # PEM CA certificates to verify an https:// destination (relative: to the file)
    proxy: SecretStr | None = None  # http://[user:password@]host:port; "": direct (whatever the default)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", value):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("must be an environment variable name")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name[:40]!r} is not a valid header name")
            if name.lower() in RESERVED_HEADERS or name.lower().startswith("x-github-"):
                raise ValueError(f"{name!r} is set by ghingest and cannot be configured")
        for header_value in value.values():
            if "\r" in header_value or "\n" in header_value:
                raise ValueError("header values cannot contain line breaks")
        return value


class RouteConfig(_Model):
    name: str
    destinations: list[str] = Field(min_length=1)
    events: list[str] = Field(default_factory=list)  # empty: every event
    actions: list[str] = Field(default_factory=list)
    repositories: list[str] = Field(default_factory=list)
    when: str | None = None
    template: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
        return value


class RoutesFile(_Model):
    destinations: list[DestinationConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)


def _where(document: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    """`routes[1] "releases-to-ci": destinations` from a pydantic error location."""
    if len(loc) >= 2 and loc[0] in ("destinations", "routes") and isinstance(loc[1], int):
        kind, index = str(loc[0]), loc[1]
        items = document.get(kind)
        name = None
        if isinstance(items, list) and index < len(items) and isinstance(items[index], Mapping):
            candidate = items[index].get("name")
            name = candidate if isinstance(candidate, str) else None
        label = f"{kind[:-1]} {name!r}" if name else f"{kind}[{index}]"
        field = ".".join(str(part) for part in loc[2:]) or "(entry)"
        return f"{label}: {field}"
    return ".".join(str(part) for part in loc) or "(file)"


def parse_routes(
    text: str,
    *,
    path: Path | str = "<routes>",
    environ: Mapping[str, str] | None = None,
    defaults: TransportDefaults = NO_DEFAULTS,
) -> RouteTable:
    """Validate a route file's text into a `RouteTable`; raise `RoutesError` listing every problem."""
    env = os.environ if environ is None else environ
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RoutesError(path, [f"not valid TOML: {exc}"]) from None
    try:
        config = RoutesFile.model_validate(document)
    except ValidationError as exc:
        errors = [f"{_where(document, tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise RoutesError(path, errors) from None
    problems: list[str] = []
    destinations: dict[str, Destination] = {}
    for d in config.destinations:
        where = f"destination {d.name!r}"
        if d.name in destinations:
            problems.append(f"{where}: name: another destination has this name")
            continue
        if (d.secret is None) == (d.secret_env is None):
            problems.append(f"{where}: secret: set exactly one of 'secret' and 'secret_env'")
            continue
        if d.secret_env is not None:
            secret = env.get(d.secret_env, "")
            if not secret:
                problems.append(f"{where}: secret_env: environment variable {d.secret_env} is not set or empty")
                continue
        else:
            assert d.secret is not None
            secret = d.secret.get_secret_value()
            if not secret:
                problems.append(f"{where}: secret: must not be empty")
                continue
        try:
            ca_bundle, proxy = _transport_of(d, defaults, folder=Path(path).parent if isinstance(path, Path) else None)
        except _Problem as problem:
            problems.append(f"{where}: {problem}")
            continue
        r = d.retry
        destinations[d.name] = Destination(
            name=d.name,
            url=d.url,
            secret=secret.encode("utf-8"),
            headers=dict(d.headers),
            timeout=d.timeout,
            concurrency=d.concurrency,
            retry=RetryPolicy(
                max_attempts=r.max_attempts,
                base_delay=r.base_delay,
                max_delay=r.max_delay,
                max_age=r.max_age,
                jitter=r.jitter,
            ),
            ca_bundle=ca_bundle,
            proxy=proxy,
        )
    names = {d.name for d in config.destinations}
    routes: list[Route] = []
    seen: set[str] = set()
    for rc in config.routes:
        where = f"route {rc.name!r}"
        if rc.name in seen:
            problems.append(f"{where}: name: another route has this name")
        seen.add(rc.name)
        for name in rc.destinations:
            if name not in names:
                problems.append(f"{where}: destinations: no destination is named {name!r}")
        when = template = None
        try:
            when = compile_condition(rc.when) if rc.when is not None else None
        except RoutingError as exc:
            problems.append(f"{where}: when: {exc}")
        try:
            template = compile_template(rc.template) if rc.template is not None else None
        except RoutingError as exc:
            problems.append(f"{where}: template: {exc}")
        routes.append(
            Route(
                name=rc.name,
                destinations=tuple(rc.destinations),
                events=frozenset(rc.events),
                actions=frozenset(rc.actions),
                repositories=tuple(rc.repositories),
                when=when,
                when_source=rc.when,
                template=template,
                template_source=rc.template,
            )
        )
    if problems:
        raise RoutesError(path, problems)
    return RouteTable(destinations=destinations, routes=tuple(routes))


class _Problem(Exception):
    """`field: message` for one destination."""


def _transport_of(
    d: DestinationConfig, defaults: TransportDefaults, *, folder: Path | None
) -> tuple[str | None, str | None]:
    """The destination's CA bundle and proxy: its own, else the defaults; checked now, not at the first forward."""
    https = d.url.startswith("https://")
    if d.ca_bundle is not None:
        if not https:
            raise _Problem("ca_bundle: only an https:// destination is verified; remove it or use https://")
        bundle = Path(d.ca_bundle).expanduser()
        if not bundle.is_absolute() and folder is not None:
            bundle = folder / bundle
        ca_bundle: str | None = str(bundle)
        try:
            check_ca_bundle(str(bundle))
        except ValueError as exc:
            raise _Problem(f"ca_bundle: {exc}") from None
    else:
        ca_bundle = defaults.ca_bundle if https else None
    if d.proxy is not None:
        proxy = d.proxy.get_secret_value() or None  # "": a direct connection, whatever the default
        if proxy is not None:
            try:
                check_proxy(proxy)
            except ValueError as exc:
                raise _Problem(f"proxy: {exc}") from None
    else:
        proxy = defaults.proxy
    return ca_bundle, proxy


def load_routes(
    path: Path, *, environ: Mapping[str, str] | None = None, defaults: TransportDefaults = NO_DEFAULTS
) -> RouteTable:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesError(path, [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise RoutesError(path, ["the file is not UTF-8 text"]) from None
    return parse_routes(text, path=path, environ=environ, defaults=defaults)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class Routes:
    """The route table in force. `reload()` swaps it atomically when the file is valid, and keeps it otherwise."""

    def __init__(self, path: Path | None, *, metrics: Metrics, defaults: TransportDefaults = NO_DEFAULTS) -> None:
        self.path = path
        self._metrics = metrics
        self._defaults = defaults
        self._log = get_logger("ghingest.routes")
        self.table: RouteTable = EMPTY_TABLE
        self.last_error: str | None = None
        self._seen: tuple[int, int, int] | None = None
        if path is not None:
            self._seen = _signature(path)
            self.table = load_routes(path, defaults=defaults)  # at start an invalid file is fatal: raise RoutesError

    def current(self) -> RouteTable:
        return self.table

    def reload(self) -> bool:
        """Load the file again; True when the new table is in force."""
        if self.path is None:
            return False
        self._seen = _signature(self.path)
        try:
            table = load_routes(self.path, defaults=self._defaults)
        except RoutesError as exc:
            self.last_error = str(exc)
            self._metrics.routes_reloads.labels("error").inc()
            self._log.error("routes.reload_failed", path=str(self.path), problems=exc.problems)
            return False
        self.table = table
        self.last_error = None
        self._metrics.routes_reloads.labels("ok").inc()
        self._log.info(
            "routes.reloaded", path=str(self.path), destinations=len(table.destinations), routes=len(table.routes)
        )
        return True

    def changed(self) -> bool:
        return self.path is not None and _signature(self.path) != self._seen

    async def watch(self, stop: asyncio.Event, interval: float) -> None:
        """Reload when the file's mtime or size changed and then stayed the same for one more `interval`, until
        `stop` is set. Waiting for the file to settle keeps a half-written file (an editor or `>` truncates first,
        then writes) from being read: an empty or cut file may well parse, as fewer routes."""
        settling: tuple[int, int, int] | None = None
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set() or self.path is None or not self.changed():
                settling = None
                continue
            signature = _signature(self.path)
            if signature == settling:
                self.reload()
                settling = None
            else:
                settling = signature
