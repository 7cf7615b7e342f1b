"""Forwarding routes: which destinations a processed delivery goes to, and the exact request each one receives.

This module performs no I/O. A `RouteTable` is built once from a validated route file (conditions and templates
are compiled then, so a bad one fails the load, not a forward); `RouteTable.match` is a pure function of an
event's indexed fields and payload; `build_forward` turns a stored delivery into the outgoing request.

The outgoing request keeps GitHub's `X-GitHub-*` headers, carries the delivery's JSON payload (a form-encoded
delivery goes out as its JSON document with `Content-Type: application/json`) and is re-signed with the
destination's own secret in `X-Hub-Signature-256`, so that any GitHub webhook library verifies it unchanged.
A route may transform the body with a template; templates run in Jinja2's immutable sandbox and must produce JSON.
Every `{{ … }}` in a template writes a JSON value (a string quoted and escaped, a number, true/false/null, an array or
an object), so no value from a payload can add fields to the document; an interpolation inside a JSON string of the
template's text is refused when the template is loaded (ADR 0006, addendum 1).
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jinja2
import jmespath
import jmespath.exceptions
import jmespath.parser
import orjson
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ghingest.core import signature
from ghingest.core.delivery import ContentKind, payload_bytes
from ghingest.core.errors import GhingestError
from ghingest.core.retry import RetryPolicy

USER_AGENT = "ghingest-forwarder"
MAX_TEMPLATE_OUTPUT = 1024 * 1024
# Headers a destination's configuration may not set: ghingest owns them.
RESERVED_HEADERS: frozenset[str] = frozenset(
    {"content-type", "content-length", "host", "x-hub-signature", "x-hub-signature-256", "transfer-encoding"}
)
_KEPT_PREFIX = "x-github-"


class RoutingError(GhingestError):
    """A condition or template that cannot be compiled (raised while loading a route table)."""


class ForwardBuildError(GhingestError):
    """A forward that cannot be built (a template that fails or yields no JSON): permanent for this job."""


@dataclass(frozen=True, slots=True)
class Destination:
    name: str
    url: str
    secret: bytes = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    concurrency: int = 4
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=10, max_age=86_400.0))
    ca_bundle: str | None = None  # a PEM file of CA certificates for an https destination; None: the system's
    proxy: str | None = field(default=None, repr=False)  # http://[user:password@]host:port; None: a direct connection


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    destinations: tuple[str, ...]
    events: frozenset[str] = frozenset()  # empty: every event
    actions: frozenset[str] = frozenset()  # empty: any action (or none)
    repositories: tuple[str, ...] = ()  # fnmatch globs on `owner/name`; empty: any repository (or none)
    when: jmespath.parser.ParsedResult | None = None
    when_source: str | None = None
    template: jinja2.Template | None = None
    template_source: str | None = None  # what `template` was compiled from (`build_forward_compiling`)

    def matches(self, *, event: str, action: str | None, repository: str | None, payload: Mapping[str, Any]) -> bool:
        if self.events and event not in self.events:
            return False
        if self.actions and action not in self.actions:
            return False
        if self.repositories and (
            repository is None or not any(glob_matches(repository, pattern) for pattern in self.repositories)
        ):
            return False
        return self.when is None or condition_holds(self.when, payload)


def glob_matches(value: str, pattern: str) -> bool:
    """Whether a name (`owner/name`) matches an fnmatch glob, ignoring case: GitHub names are case-insensitive."""
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def condition_holds(expression: jmespath.parser.ParsedResult, payload: Mapping[str, Any]) -> bool:
    """JMESPath truthiness: false, null, empty strings, lists and objects are false; a failing search is false."""
    try:
        result = expression.search(payload)
    except jmespath.exceptions.JMESPathError:
        return False
    return result not in (None, False, "", [], {})


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    """One forward job to create: a destination, and the route that chose it (whose template applies)."""

    destination: str
    route: str | None


@dataclass(frozen=True, slots=True)
class RouteMatcher:
    """What matching needs of a route table, and nothing it cannot send to another process: no templates, no
    destination secrets (`RouteTable.matcher`)."""

    routes: tuple[Route, ...] = ()
    destinations: frozenset[str] = frozenset()

    def match(
        self, *, event: str, action: str | None, repository: str | None, payload: Mapping[str, Any]
    ) -> tuple[ForwardTarget, ...]:
        """The destinations this event goes to, each once (the first route that names a destination wins)."""
        targets: dict[str, ForwardTarget] = {}
        for route in self.routes:
            if not route.matches(event=event, action=action, repository=repository, payload=payload):
                continue
            for name in route.destinations:
                if name not in targets and name in self.destinations:
                    targets[name] = ForwardTarget(destination=name, route=route.name)
        return tuple(targets.values())


EMPTY_MATCHER = RouteMatcher()


@dataclass(frozen=True, slots=True)
class RouteTable:
    destinations: Mapping[str, Destination] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    routes_by_name: Mapping[str, Route] = field(init=False, repr=False, compare=False)
    matcher: RouteMatcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes_by_name", {route.name: route for route in self.routes})
        matching = tuple(replace(route, template=None) for route in self.routes)
        object.__setattr__(self, "matcher", RouteMatcher(matching, frozenset(self.destinations)))

    def match(
        self, *, event: str, action: str | None, repository: str | None, payload: Mapping[str, Any]
    ) -> tuple[ForwardTarget, ...]:
        """The destinations this event goes to, each once (the first route that names a destination wins)."""
        return self.matcher.match(event=event, action=action, repository=repository, payload=payload)


EMPTY_TABLE = RouteTable()


# --- compiling conditions and templates (at load time) ---------------------------------------------------------


def compile_condition(source: str) -> jmespath.parser.ParsedResult:
    try:
        return jmespath.compile(source)
    except jmespath.exceptions.JMESPathError as exc:
        raise RoutingError(f"not a valid JMESPath expression: {_first_line(str(exc))}") from None


class JsonText(str):
    """Text that is JSON already (what the `json` filter returns): the finalizer writes it as it is."""

    __slots__ = ()


def json_value(value: Any) -> str:
    """The finalizer of every `{{ … }}`: the value as a JSON literal, so that payload data is always data."""
    if isinstance(value, JsonText):
        return value
    if isinstance(value, jinja2.Undefined):
        return str(value)  # StrictUndefined: raises UndefinedError, naming what is missing
    return orjson.dumps(value).decode("utf-8")


def _json_filter(value: Any) -> JsonText:
    return JsonText(orjson.dumps(value).decode("utf-8"))


# Autoescaping for JSON: Jinja's own `autoescape` escapes for HTML, so it stays off; the finalizer does JSON's.
_environment = ImmutableSandboxedEnvironment(
    autoescape=False, finalize=json_value, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
)
_environment.filters["json"] = _json_filter  # kept for templates written before every `{{ … }}` was JSON
_environment.filters["tojson"] = _json_filter  # Jinja's own would be written twice (it returns Markup, not JSON text)

_INSIDE_A_STRING = (
    "an interpolation inside a JSON string: every {{ … }} writes a whole JSON value (a string comes quoted and "
    "escaped), so write the string as one expression, e.g. "
    '{"text": {{ "New release " ~ payload.release.tag_name }} } instead of "New release {{ … }}"'
)


def compile_template(source: str) -> jinja2.Template:
    try:
        template = _environment.from_string(source)
        line = interpolation_in_a_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise RoutingError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    if line is not None:
        raise RoutingError(f"line {line}: {_INSIDE_A_STRING}")
    return template


def interpolation_in_a_string(source: str) -> int | None:
    """The line of the first `{{ … }}` that stands inside a JSON string of the template's own text, or None.

    The template's text (outside `{{ }}`, `{% %}` and comments) is read as JSON text, in source order: a quote opens
    or closes a string, a backslash escapes the next character. Branches are not followed separately; a template
    that fools this reading (a quote opened in one branch only) still cannot inject anything — every value is an
    escaped JSON literal — it renders invalid JSON, and its forwards are dead-lettered with that reason.
    """
    in_string = escaped = False
    for line, kind, value in _environment.lex(source):
        if kind == "variable_begin" and in_string:
            return line
        if kind != "data":
            continue
        for char in value:
            if escaped:
                escaped = False
            elif in_string and char == "\\":
                escaped = True
            elif char == '"':
                in_string = not in_string
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


# --- building the outgoing request ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    url: str
    headers: Mapping[str, str]
    body: bytes


def render_template(template: jinja2.Template, *, event: str, delivery_id: str, payload: Any) -> bytes:
    """Render `template` against the payload; the result must be one JSON document. Raise `ForwardBuildError`."""
    context = {
        "payload": payload,
        "event": event,
        "delivery_id": delivery_id,
        "action": payload.get("action") if isinstance(payload, Mapping) else None,
        "repository": (payload.get("repository") or {}).get("full_name") if isinstance(payload, Mapping) else None,
    }
    try:
        text = template.render(context)
    except jinja2.exceptions.SecurityError as exc:
        raise ForwardBuildError(f"template refused by the sandbox: {_first_line(str(exc))[:200]}") from None
    except jinja2.TemplateError as exc:
        raise ForwardBuildError(f"template failed: {_first_line(str(exc))[:200]}") from None
    except Exception as exc:  # a filter or test that raised on this payload's data
        raise ForwardBuildError(f"template failed: {exc.__class__.__name__}") from None
    body = text.encode("utf-8")
    if len(body) > MAX_TEMPLATE_OUTPUT:
        raise ForwardBuildError("template output exceeds 1 MiB")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ForwardBuildError("template output is not valid JSON") from None
    return orjson.dumps(document)


@functools.lru_cache(maxsize=64)
def _compiled(source: str) -> jinja2.Template:
    return compile_template(source)


def build_forward_compiling(
    destination: Destination,
    *,
    template_source: str | None,
    delivery_id: str,
    event: str,
    content_kind: ContentKind,
    headers: Mapping[str, str],
    body: bytes,
) -> OutgoingRequest:
    """`build_forward` with the template given by its source: a plain function of plain values, for a worker
    process (a compiled template cannot be sent to one)."""
    template = _compiled(template_source) if template_source is not None else None
    return build_forward(
        destination,
        delivery_id=delivery_id,
        event=event,
        content_kind=content_kind,
        headers=headers,
        body=body,
        template=template,
    )


def build_forward(
    destination: Destination,
    *,
    delivery_id: str,
    event: str,
    content_kind: ContentKind,
    headers: Mapping[str, str],
    body: bytes,
    template: jinja2.Template | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> OutgoingRequest:
    """The request for `destination`: GitHub's headers kept, the JSON payload, re-signed with its secret."""
    try:
        out_body = payload_bytes(content_kind, body)
    except GhingestError as exc:
        raise ForwardBuildError(str(exc)) from None
    if template is not None:
        try:
            payload = orjson.loads(out_body)
        except orjson.JSONDecodeError:
            raise ForwardBuildError("payload is not valid JSON") from None
        out_body = render_template(template, event=event, delivery_id=delivery_id, payload=payload)
    out: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith(_KEPT_PREFIX):
            out[_github_case(lowered)] = value
    out["X-GitHub-Event"] = event
    out["X-GitHub-Delivery"] = delivery_id
    for name, value in destination.headers.items():
        out[name] = value
    for name, value in extra_headers:
        out[name] = value
    out["User-Agent"] = USER_AGENT
    out["Content-Type"] = "application/json"
    out["X-Hub-Signature-256"] = signature.sign(out_body, destination.secret)
    return OutgoingRequest(url=destination.url, headers=out, body=out_body)


_SPECIAL_WORDS = {"github": "GitHub", "id": "ID"}


def _github_case(lowered: str) -> str:
    """`x-github-hook-installation-target-id` → `X-GitHub-Hook-Installation-Target-ID`, as GitHub spells them."""
    return "-".join(_SPECIAL_WORDS.get(word, word.capitalize()) for word in lowered.split("-"))
