"""What the listening commands tell a person: on start, where to point GitHub and any credential generated just
now (once); once the server accepts connections, that it is ready and, when GitHub cannot reach the webhook URL
(a loopback address), how to expose it (README: "Connect GitHub")."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from rich.console import Console

from ghingest.app.receiver import PATH
from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings

README_SECTION = 'README.md, "Connect GitHub"'


def local_url(settings: Settings) -> str:
    """Where this process listens, as a URL a client on this machine can use."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104 - comparing, not binding
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def base_url(settings: Settings) -> str:
    """How GitHub and browsers reach this service: GHINGEST_PUBLIC_URL, else where it listens."""
    return settings.public_url.rstrip("/") if settings.public_url else local_url(settings)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret_lines(runtime: Runtime) -> list[str]:
    secret = runtime.webhook_secrets
    if not secret.generated:
        return [f"Webhook secret: from {secret.source}"]
    return [
        "",
        "A webhook secret was generated (shown only this once; kept in " + secret.source + "):",
        f"  {secret.values[0]}",
        "In GitHub: Settings → Webhooks → Add webhook. Payload URL: the webhook URL above;",
        "Content type: application/json; Secret: the value above.",
    ]


def _print(console: Console, lines: list[str]) -> None:
    console.print("\n".join(lines), soft_wrap=True, highlight=False, markup=False)


def first_start_banner(console: Console, runtime: Runtime) -> None:
    url = base_url(runtime.settings)
    lines = [f"Webhook URL:   {url}{PATH}", f"Read API:      {url}/api/releases   (OpenAPI: {url}/openapi.json)"]
    token = runtime.api_tokens
    lines += _secret_lines(runtime)
    if token.generated:
        lines += [
            "",
            "An API token was generated (shown only this once; kept in " + token.source + "):",
            f"  {token.values[0]}",
            f"  curl -H 'Authorization: Bearer {token.values[0]}' {url}/api/releases",
            "Dashboard: open this sign-in link (it signs this browser in; keep it private):",
            f"  {url}/login?token={token.values[0]}",
        ]
    else:
        lines.append(f"Dashboard:     {url}/   (sign in with an API token)")
    _print(console, ["ghingest is starting", *lines])


def sign_in_hint(console: Console, runtime: Runtime) -> None:
    """What `ghingest dashboard` says on start: where it is and, with a token generated just now, a sign-in link."""
    url = base_url(runtime.settings)
    lines = [f"Dashboard:     {url}/", f"Read API:      {url}/api/releases"]
    if runtime.api_tokens.generated:
        lines += [
            "An API token was generated (kept in " + runtime.api_tokens.source + "); sign-in link:",
            f"  {url}/login?token={runtime.api_tokens.values[0]}",
        ]
    _print(console, ["ghingest dashboard is starting", *lines])


def receiver_banner(console: Console, runtime: Runtime) -> None:
    """What `ghingest receiver` says on start: the webhook URL and, generated just now, the secret (once)."""
    url = base_url(runtime.settings)
    lines = [f"Webhook URL:   {url}{PATH}", f"Readiness:     {url}/readyz", *_secret_lines(runtime)]
    if runtime.api_tokens.generated:
        lines.append(
            f"An API token was generated for the read API and dashboard (kept in {runtime.api_tokens.source})."
        )
    lines.append("No worker runs here: run `ghingest worker` against the same database.")
    _print(console, ["ghingest receiver is starting", *lines])


def ready_banner(console: Console, settings: Settings, *, receives_webhooks: bool) -> None:
    """Once the server accepts connections: say so; if the webhook URL is a loopback address, which GitHub cannot
    reach, say how to expose the port through a tunnel and what to enter in GitHub."""
    local = local_url(settings)
    lines = [f"ghingest is ready: accepting connections on {local}"]
    url = base_url(settings)
    if receives_webhooks and is_loopback(url):
        tunnel = f"http://127.0.0.1:{settings.port}"
        lines += [
            f"GitHub cannot reach {url}{PATH} (a loopback address). To connect GitHub, expose the port, e.g.:",
            f"  cloudflared tunnel --url {tunnel}     (or: ngrok http {settings.port})",
            "then, in the repository or organization: Settings → Webhooks → Add webhook:",
            f"  Payload URL: <the tunnel's https URL>{PATH}   Content type: application/json",
            "  Secret: the webhook secret   Events: Releases (or the ones you route)",
            "and set GHINGEST_PUBLIC_URL to the tunnel's URL so that links and this message use it.",
            f"Step by step: {README_SECTION}.",
        ]
    _print(console, lines)
