"""The `ghingest` command line (Typer)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import ghingest
from ghingest.app import audit, operations, samples, sender
from ghingest.app.credentials import WEBHOOK_SECRET_FILE
from ghingest.app.logs import configure_logging
from ghingest.app.settings import ConfigError, Settings, load_settings, without_password
from ghingest.core.time import parse_iso
from ghingest.ports import ReprocessSelection
from ghingest.ports.audit import REPROCESS

if TYPE_CHECKING:
    from ghingest.app.runtime import Runtime

app = typer.Typer(
    help="ghingest: receive, verify, record and process GitHub webhook deliveries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="Dashboard users (the users file).", no_args_is_help=True)
app.add_typer(users_app, name="users")
console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ghingest {ghingest.__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """ghingest: receive, verify, record and process GitHub webhook deliveries."""


def _settings(**overrides: object) -> Settings:
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    return settings


def _upgrade(settings: Settings) -> None:
    """Apply the schema migrations of the configured backend (none for `memory://`)."""
    from ghingest.adapters.factory import UnsupportedBackend, open_backend

    try:
        open_backend(settings).resources.upgrade()
    except UnsupportedBackend as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _runtime(settings: Settings, *, run_worker: bool, migrate: bool) -> Runtime:
    """Build the runtime (an invalid route file or users file is a configuration error) and migrate."""
    from ghingest.app.runtime import Runtime

    try:
        runtime = Runtime.build(settings, run_worker=run_worker)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if migrate:
        _upgrade(settings)
    return runtime


def _port_free(settings: Settings) -> None:
    """Exit (2) with a clear message when the address is taken, before anything starts against the database (a
    second `serve` on a busy port would otherwise run its worker and forwarder, then fail to listen)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                console.print(
                    f"[red]error:[/red] {settings.host}:{settings.port} is already in use (another ghingest?):"
                    " choose another with --port or GHINGEST_PORT"
                )
            else:
                console.print(f"[red]error:[/red] cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
            raise typer.Exit(2) from None


def _listen(application: Any, settings: Settings, **options: Any) -> None:
    """Serve `application` (an `Application` or the FastAPI app of `create_api`) with uvicorn on the configured
    address, with the HTTP limits of `settings` (`http_limits.uvicorn_config`: the one place they are set)."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from ghingest.app.asgi import Application
    from ghingest.app.http_limits import uvicorn_config

    runtime = application.runtime if isinstance(application, Application) else application.state.runtime
    _open_file_limit(settings.http_max_connections)
    server = uvicorn.Server(uvicorn_config(application, settings, metrics=runtime.metrics, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _open_file_limit(connections: int) -> None:
    """Raise the soft open-file limit so that the connection limit, not the file descriptors, is what a client
    meets first (a connection past it is still accepted, to be answered 503); warn when the hard limit is lower."""
    import resource

    wanted = 2 * connections + 256  # connections, the ones being refused, the database, outgoing forwards
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        console.print(
            f"[yellow]warning:[/yellow] the open-file limit ({hard}) is below what GHINGEST_HTTP_MAX_CONNECTIONS="
            f"{connections} needs (~{wanted}); lower it or raise `ulimit -n`"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on \\[env GHINGEST_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on \\[env GHINGEST_PORT].")] = None,
    migrate: Annotated[bool, typer.Option(help="Apply schema migrations before starting.")] = True,
) -> None:
    """Run receiver, worker, forwarder, read API and dashboard in one process (the embedded profile)."""
    from ghingest.app.asgi import Application
    from ghingest.app.banner import first_start_banner

    settings = _settings(host=host, port=port)
    _port_free(settings)
    runtime = _runtime(settings, run_worker=True, migrate=migrate)
    first_start_banner(console, runtime)
    _listen(Application(runtime), settings, loop="uvloop", timeout_graceful_shutdown=10)


@app.command()
def receiver(
    host: Annotated[str | None, typer.Option(help="Address to listen on \\[env GHINGEST_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on \\[env GHINGEST_PORT].")] = None,
    migrate: Annotated[bool, typer.Option(help="Apply schema migrations before starting.")] = True,
) -> None:
    """Run only the webhook receiver (with /healthz, /readyz, /metrics): no worker, forwarder, read API or dashboard.
    Run `ghingest worker` beside it, against the same database."""
    from ghingest.app.asgi import Application
    from ghingest.app.banner import receiver_banner

    settings = _settings(host=host, port=port)
    _port_free(settings)
    runtime = _runtime(settings, run_worker=False, migrate=migrate)
    receiver_banner(console, runtime)
    _listen(Application(runtime, read_side=False), settings, loop="uvloop", timeout_graceful_shutdown=10)


@app.command()
def worker() -> None:
    """Run only the worker: process recorded deliveries until SIGTERM or Ctrl-C (it drains first)."""
    from ghingest.app.runtime import WORKER

    _run_background_role(WORKER)


@app.command()
def forwarder() -> None:
    """Run only the forwarder: deliver forward jobs until SIGTERM or Ctrl-C (it drains first). With SQLite, run
    one forwarder per database file (`ghingest serve` has one)."""
    from ghingest.app.runtime import FORWARDER

    _run_background_role(FORWARDER)


def _run_background_role(role: str) -> None:
    """Start one background role; on SIGTERM or SIGINT, drain (stop claiming, finish or release what is held) and
    exit 0."""
    import signal

    from ghingest.app.runtime import Runtime

    settings = _settings()
    try:
        runtime = Runtime.build(settings, roles=frozenset({role}), generate_credentials=False)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stopping.set)
        await runtime.start()
        console.print(f"{role} running on {runtime.backend.name}; SIGTERM or Ctrl-C drains it and stops")
        try:
            await stopping.wait()
            console.print(f"{role} draining")
        finally:
            await runtime.stop()
        console.print(f"{role} stopped")

    asyncio.run(main())


@app.command()
def send(
    url: Annotated[str, typer.Option(help="Where to POST.")] = "http://127.0.0.1:8080/webhooks/github",
    file: Annotated[Path | None, typer.Option(help="A JSON payload file; default: a sample release.")] = None,
    event: Annotated[str, typer.Option(help="X-GitHub-Event.")] = "release",
    secret: Annotated[
        str | None,
        typer.Option(envvar="GHINGEST_SEND_SECRET", help="Webhook secret (default: the configured one)."),
    ] = None,
    form: Annotated[bool, typer.Option(help="Send as application/x-www-form-urlencoded.")] = False,
    delivery_id: Annotated[str | None, typer.Option(help="X-GitHub-Delivery (default: a new UUID).")] = None,
    action: Annotated[str, typer.Option(help="Sample release: the action.")] = "published",
    release_id: Annotated[int, typer.Option(help="Sample release: release.id.")] = 123456789,
    tag: Annotated[str, typer.Option(help="Sample release: tag name.")] = "v1.0.0",
    repo: Annotated[str, typer.Option(help="Sample release: repository full name.")] = "octo-org/octo-repo",
) -> None:
    """Sign and POST a payload exactly as GitHub does (all headers, either content type)."""
    if file is not None:
        try:
            payload = file.read_bytes()
            orjson.loads(payload)
        except (OSError, orjson.JSONDecodeError) as exc:
            console.print(f"[red]error:[/red] {file}: not a readable JSON file ({exc.__class__.__name__})")
            raise typer.Exit(2) from None
    else:
        payload = orjson.dumps(
            samples.release_payload(action=action, release_id=release_id, tag=tag, repository_name=repo)
        )
    if secret is None:
        secret = _configured_secret()
    request = sender.hookshot_request(payload, event=event, secret=secret, delivery_id=delivery_id, form=form)
    try:
        response = sender.send(url, request)
    except Exception as exc:
        console.print(f"[red]error:[/red] could not reach {url}: {exc.__class__.__name__}")
        raise typer.Exit(1) from None
    typer.echo(f"{response.status_code} {response.text}")
    if response.status_code >= 300:
        raise typer.Exit(1)


def _configured_secret() -> str:
    from ghingest.app.credentials import webhook_secrets

    settings = _settings()
    try:
        return webhook_secrets(settings, generate=False).values[0]
    except ConfigError:
        console.print(
            "[red]error:[/red] no webhook secret: pass --secret, set GHINGEST_WEBHOOK_SECRETS, or start"
            f" `ghingest serve` once to generate {settings.data_dir / WEBHOOK_SECRET_FILE}"
        )
        raise typer.Exit(2) from None


@app.command()
def reprocess(
    delivery: Annotated[str | None, typer.Option("--delivery", help="One delivery id.")] = None,
    since: Annotated[str | None, typer.Option(help="Every delivery received at or after (ISO-8601).")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only deliveries whose processing failed.")] = False,
) -> None:
    """Rebuild events and releases from the stored raw deliveries (after a parser fix, say)."""
    from ghingest.app.runtime import Runtime

    if delivery is None and since is None and not failed:
        console.print("[red]error:[/red] choose what to reprocess: --delivery ID, --since TIME or --failed")
        raise typer.Exit(2)
    try:
        since_epoch = parse_iso(since) if since else None
    except ValueError:
        console.print("[red]error:[/red] --since must be an ISO-8601 time such as 2024-05-01T00:00:00Z")
        raise typer.Exit(2) from None
    settings = _settings()
    _upgrade(settings)
    runtime = Runtime.build(settings, run_worker=False, generate_credentials=False)
    selection = ReprocessSelection(delivery_id=delivery, since=since_epoch, failed_only=failed)

    async def work() -> dict[str, Any]:
        marked = await operations.reprocess(runtime.backend, selection)
        worker = runtime.worker()
        with Progress(
            TextColumn("reprocessing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("reprocess", total=marked)
            done = 0
            while (batch := await worker.run_once()) > 0:
                done += batch
                progress.update(task, completed=min(done, marked))
        result: dict[str, Any] = {"queued": marked, "processed": done}
        if delivery is not None and marked:
            view = await runtime.backend.reads.get_delivery(delivery)
            if view is not None:
                result |= {"status": str(view.status), "delivery_error": view.error}
        return result

    async def main() -> int:
        await runtime.start()
        try:
            document = audit.reprocess_selection_document(selection)
            done = await audit.perform(runtime, audit.cli_actor(), REPROCESS, document, work)
            if done.entry is None:
                console.print("[yellow]warning:[/yellow] the audit log could not record this reprocessing")
            return int(done.result["queued"])
        finally:
            await runtime.stop()

    marked = asyncio.run(main())
    if marked == 0:
        console.print("no delivery matched")
        raise typer.Exit(1)
    console.print(f"reprocessed {marked} deliveries")


@app.command()
def dashboard(
    host: Annotated[str | None, typer.Option(help="Address to listen on \\[env GHINGEST_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on \\[env GHINGEST_PORT].")] = None,
    migrate: Annotated[bool, typer.Option(help="Apply schema migrations before starting.")] = True,
) -> None:
    """Run only the dashboard and the read API (no receiver, no worker): the scale-out profile's web tier."""
    from ghingest.app.asgi import create_api
    from ghingest.app.banner import sign_in_hint

    settings = _settings(host=host, port=port)
    _port_free(settings)
    runtime = _runtime(settings, run_worker=False, migrate=migrate)
    sign_in_hint(console, runtime)
    _listen(create_api(runtime, receives_webhooks=False), settings, timeout_graceful_shutdown=3)


class UserRole(StrEnum):
    viewer = "viewer"
    operator = "operator"


@users_app.command("hash")
def users_hash(
    name: Annotated[str, typer.Argument(help="The user's name (no ':').")],
    role: Annotated[
        UserRole, typer.Option(help="viewer: reads only; operator: may also reprocess, replay and retry.")
    ] = UserRole.viewer,
) -> None:
    """Ask for a password and print a users-file line `name:<argon2id hash>:<role>` (GHINGEST_USERS_FILE)."""
    from ghingest.app.users import hash_password

    if not name or ":" in name or name != name.strip():
        console.print("[red]error:[/red] a user name is non-empty, has no ':' and no surrounding spaces")
        raise typer.Exit(2)
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < 8:
        console.print("[red]error:[/red] use a password of at least 8 characters")
        raise typer.Exit(2)
    typer.echo(f"{name}:{hash_password(password)}:{role.value}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations up to the newest."""
    settings = _settings()
    _upgrade(settings)
    console.print(f"database at {without_password(settings.database_url)} is up to date")


from ghingest.app.replay_cli import replay  # noqa: E402 - the command needs this module's helpers at run time

app.command()(replay)

from ghingest.app.github_cli import reconcile, track  # noqa: E402 - as replay

app.command()(reconcile)
app.command()(track)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
