"""What `serve` tells a person on start: where to point GitHub, and any credential generated just now (once)."""

from __future__ import annotations

from rich.console import Console

from ghingest.app.receiver import PATH
from ghingest.app.runtime import Runtime


def base_url(runtime: Runtime) -> str:
    s = runtime.settings
    if s.public_url:
        return s.public_url.rstrip("/")
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host  # noqa: S104 - comparing, not binding
    return f"http://{host}:{s.port}"


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


def first_start_banner(console: Console, runtime: Runtime) -> None:
    url = base_url(runtime)
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
    console.print("\n".join(["ghingest is starting", *lines]), soft_wrap=True, highlight=False, markup=False)


def sign_in_hint(console: Console, runtime: Runtime) -> None:
    """What `ghingest dashboard` says on start: where it is and, with a token generated just now, a sign-in link."""
    url = base_url(runtime)
    lines = [f"Dashboard:     {url}/", f"Read API:      {url}/api/releases"]
    if runtime.api_tokens.generated:
        lines += [
            "An API token was generated (kept in " + runtime.api_tokens.source + "); sign-in link:",
            f"  {url}/login?token={runtime.api_tokens.values[0]}",
        ]
    console.print("\n".join(["ghingest dashboard is starting", *lines]), soft_wrap=True, highlight=False, markup=False)


def receiver_banner(console: Console, runtime: Runtime) -> None:
    """What `ghingest receiver` says on start: the webhook URL and, generated just now, the secret (once)."""
    url = base_url(runtime)
    lines = [f"Webhook URL:   {url}{PATH}", f"Readiness:     {url}/readyz", *_secret_lines(runtime)]
    if runtime.api_tokens.generated:
        lines.append(
            f"An API token was generated for the read API and dashboard (kept in {runtime.api_tokens.source})."
        )
    lines.append("No worker runs here: run `ghingest worker` against the same database.")
    console.print("\n".join(["ghingest receiver is starting", *lines]), soft_wrap=True, highlight=False, markup=False)
