"""Jinja2 rendering for the dashboard: the environment, its filters, and the security headers of every page."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

import ghingest
from ghingest.core.delivery import ContentKind, payload_bytes
from ghingest.core.errors import GhingestError
from ghingest.core.processing import FAILURE_EXPLANATIONS, failure_kind
from ghingest.core.time import iso_utc, time_of

# No request leaves the app: every asset is ours; no inline script; no inline style attribute.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self';"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str
    prefixes: tuple[str, ...]  # the paths under which this item is the current page
    operator_only: bool = False  # shown to operators only (its page answers 403 to a viewer)


def _parse_time(value: str | float | None) -> datetime | None:
    """A stored time (ISO-8601 text from a payload, or epoch seconds) in UTC; None when there is none or it is no
    time the calendar has (a payload may carry `9999-12-31T23:59:59-23:59`)."""
    if value is None or value == "":
        return None
    try:
        return time_of(value)
    except ValueError:
        return None


def relative_time(value: str | float | datetime | None, now: datetime | None = None) -> str:
    moment = value if isinstance(value, datetime) else _parse_time(value)
    if moment is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for limit, size, unit in (
        (60, 1, "second"),
        (3600, 60, "minute"),
        (86400, 3600, "hour"),
        (86400 * 30, 86400, "day"),
        (86400 * 365, 86400 * 30, "month"),
        (float("inf"), 86400 * 365, "year"),
    ):
        if seconds < limit:
            n = int(seconds // size)
            if unit == "second" and n < 10:
                return "just now"
            text = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return "—"  # pragma: no cover - the last limit is infinite


def absolute_time(value: str | float | None) -> str:
    moment = _parse_time(value)
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def machine_time(value: str | float | None) -> str:
    moment = _parse_time(value)
    return "" if moment is None else iso_utc(moment)


def time_tag(value: str | float | None) -> Markup:
    """`<time>` with the relative time as text and the absolute time on hover (one parse for all three). A value
    that is no time is shown as given (escaped, shortened), marked as an invalid date."""
    moment = _parse_time(value)
    if moment is None:
        if value is None or value == "":
            return Markup('<span class="muted">—</span>')
        return Markup('<span class="muted invalid-date" title="invalid date">{}</span>').format(str(value)[:64])
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        iso_utc(moment), moment.strftime("%Y-%m-%d %H:%M:%S UTC"), relative_time(moment)
    )


def avatar_hue(login: str | None) -> int:
    return hashlib.sha256((login or "").encode("utf-8")).digest()[0] % 12


def initials(login: str | None) -> str:
    parts = [p for p in (login or "?").replace("_", "-").split("-") if p]
    letters = "".join(p[0] for p in parts[:2]) if len(parts) > 1 else (login or "?")[:2]
    return letters.upper()


_AFTER_SEPARATOR = re.compile(r"(?<=[/\-_.])(?=.)")


def breakable(value: str | None) -> Markup:
    """`value` escaped, with a `<wbr>` after each `/`, `-`, `_` and `.`: a long name (`owner/name`, a tag, an id)
    wraps at those and nowhere else (the CSS breaks a single over-long part only when nothing else fits)."""
    return Markup("<wbr>").join(escape(part) for part in _AFTER_SEPARATOR.split(value or ""))


def repo_name(value: str | None) -> Markup:
    """A repository's `owner/name` as shown everywhere: `breakable`, in a `.repo-name` span."""
    return Markup('<span class="repo-name">{}</span>').format(breakable(value))


def safe_href(url: str | None) -> str | None:
    """Only http(s) links from payloads become links (a payload could carry a `javascript:` URL)."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


PRETTY_PAYLOAD_BYTES = 256 * 1024  # larger payloads are shown as sent, cut: parsing them would stall the page


def pretty_payload(kind: str, body: bytes) -> str:
    """The payload indented for reading; a large one as it was sent, cut at `PRETTY_PAYLOAD_BYTES`."""
    if len(body) > PRETTY_PAYLOAD_BYTES:
        shown = body[:PRETTY_PAYLOAD_BYTES].decode("utf-8", errors="replace")
        return f"{shown}\n\n… {len(body):,} bytes in all: GET /api/deliveries/<id>?raw=1 has the whole body."
    try:
        document = orjson.loads(payload_bytes(ContentKind(kind), body))
        return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode("utf-8")
    except (ValueError, GhingestError, orjson.JSONDecodeError):
        return body.decode("utf-8", errors="replace")


def query_string(params: Mapping[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "", False)}
    return "?" + urlencode(kept) if kept else "?"


def build_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ghingest.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        reltime=relative_time,
        abstime=absolute_time,
        isotime=machine_time,
        timetag=time_tag,
        avatar_hue=avatar_hue,
        initials=initials,
        safe_href=safe_href,
        repo_name=repo_name,
        failure_kind=failure_kind,
    )
    env.globals.update(
        version=ghingest.__version__, query_string=query_string, failure_explanations=FAILURE_EXPLANATIONS
    )
    return env


def _under(path: str, prefix: str) -> bool:
    return path == prefix if prefix == "/" else path == prefix or path.startswith(prefix.rstrip("/") + "/")


class Renderer:
    """Renders a page with the context every page needs (the user, the CSRF token, the navigation)."""

    def __init__(self, nav: list[NavItem]) -> None:
        self.env = build_environment()
        self.nav = nav

    def page(self, request: Request, name: str, context: Mapping[str, Any], *, status_code: int = 200) -> HTMLResponse:
        principal = getattr(request.state, "principal", None)
        flash = getattr(request.state, "flash", None)  # ghingest.dashboard.flash, set by `signed_in`
        path = request.url.path
        current = next((item.href for item in self.nav if any(_under(path, p) for p in item.prefixes)), None)
        html = self.env.get_template(name).render(
            {"request": request, "principal": principal, "flash": flash, "nav": self.nav, "current_nav": current}
            | dict(context)
        )
        return HTMLResponse(html, status_code=status_code, headers=dict(SECURITY_HEADERS))


def renderer_of(request: Request) -> Renderer:
    """The dashboard's renderer (set on `app.state` when the dashboard is mounted)."""
    renderer: Renderer = request.app.state.dashboard_renderer
    return renderer
