"""The `ghingest` command line (Typer)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import orjson
import typer

import ghingest
from ghingest.app import audit, operations, samples, sender
from ghingest.app.credentials import WEBHOOK_SECRET_FILE
from ghingest.app.logs import configure_logging
from ghingest.app.settings import ConfigError, Settings, load_settings, without_password
from ghingest.app.terminal import EPILOG, App, ExitCode, bad_flag, bar, console, fail, progress, usage_error
from ghingest.core.time import parse_iso
from ghingest.ports import ReprocessSelection
from ghingest.ports.audit import REPROCESS
from ghingest.ports.inbox import Settle

if TYPE_CHECKING:
    from ghingest.app.runtime import Runtime

app = App(help="ghingest: receive, verify, record and process GitHub webhook deliveries.", epilog=EPILOG)
db_app = App(help="Database schema commands.")
app.add_typer(db_app, name="db")
users_app = App(help="Dashboard users (the users file).")
app.add_typer(users_app, name="users")


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
        raise fail(str(exc)) from None
    configure_logging(settings.log_level)
    return settings


def _upgrade(settings: Settings) -> None:
    """Apply the schema migrations of the configured backend (none for `memory://`)."""
    from ghingest.adapters.factory import UnsupportedBackend, open_backend

    try:
        open_backend(settings).resources.upgrade()
    except UnsupportedBackend as exc:
        raise fail(str(exc)) from None


def _runtime(settings: Settings, *, run_worker: bool = False, migrate: bool = True, generate: bool = True) -> Runtime:
    """Build the runtime (an invalid route file or users file is a configuration error) and migrate. `generate`:
    make the webhook secret and API token on a first start (only the listening commands do)."""
    from ghingest.app.runtime import Runtime

    try:
        runtime = Runtime.build(settings, run_worker=run_worker, generate_credentials=generate)
    except ConfigError as exc:
        raise fail(str(exc)) from None
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
                raise fail(
                    f"{settings.host}:{settings.port} is already in use (another ghingest?):"
                    " choose another with --port or GHINGEST_PORT"
                ) from None
            raise fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None


def _listen(application: Any, settings: Settings, *, receives_webhooks: bool, **options: Any) -> None:
    """Serve `application` (an `Application` or the FastAPI app of `create_api`) with uvicorn on the configured
    address, with the HTTP limits of `settings` (`http_limits.uvicorn_config`: the one place they are set); say
    it is ready once it accepts connections (after the runtime started and the socket listens). A `Listener`: live
    streams end when it begins to shut down, and SIGTERM is a clean stop (exit 0)."""
    from uvicorn.config import STARTUP_FAILURE

    from ghingest.app.asgi import Application
    from ghingest.app.banner import ready_banner
    from ghingest.app.http_limits import uvicorn_config
    from ghingest.app.listener import Listener, exit_cleanly_on_sigterm, exit_promptly

    class Server(Listener):
        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                ready_banner(console, settings, receives_webhooks=receives_webhooks)

    runtime = application.runtime if isinstance(application, Application) else application.state.runtime
    _open_file_limit(settings.http_max_connections)
    server = Server(uvicorn_config(application, settings, metrics=runtime.metrics, **options), runtime=runtime)
    exit_cleanly_on_sigterm()
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
    exit_promptly()


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
    _listen(Application(runtime), settings, receives_webhooks=True, loop="uvloop", timeout_graceful_shutdown=10)


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
    _listen(Application(runtime, read_side=False), settings, receives_webhooks=True, loop="uvloop",
            timeout_graceful_shutdown=10)  # fmt: skip


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
        raise fail(str(exc)) from None

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
    url: Annotated[
        str | None,
        typer.Option(
            help="The service's base URL or its webhook URL. Default: where `ghingest serve` listens, from"
            " GHINGEST_HOST and GHINGEST_PORT."
        ),
    ] = None,
    file: Annotated[Path | None, typer.Option(help="A JSON payload file; default: a sample release.")] = None,
    event: Annotated[str, typer.Option(help="X-GitHub-Event.")] = "release",
    secret: Annotated[
        str | None,
        typer.Option(envvar="GHINGEST_SEND_SECRET", help="Webhook secret (default: the configured one)."),
    ] = None,
    form: Annotated[bool, typer.Option("--form", help="Send as application/x-www-form-urlencoded.")] = False,
    delivery_id: Annotated[str | None, typer.Option(help="X-GitHub-Delivery (default: a new UUID).")] = None,
    action: Annotated[
        str, typer.Option(help="Sample release: the action (prereleased makes it a pre-release).")
    ] = "published",
    release_id: Annotated[int, typer.Option(help="Sample release: release.id.")] = 123456789,
    tag: Annotated[str, typer.Option(help="Sample release: tag name.")] = "v1.0.0",
    repo: Annotated[str, typer.Option(help="Sample release: repository full name.")] = "octo-org/octo-repo",
    prerelease: Annotated[bool, typer.Option("--prerelease", help="Sample release: a pre-release.")] = False,
    draft: Annotated[bool, typer.Option("--draft", help="Sample release: a draft (not published).")] = False,
    published_at: Annotated[
        str | None, typer.Option(help="Sample release: published_at (ISO-8601; default: a fixed time).")
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Write the body to stdout as it would be sent; send nothing.")
    ] = False,
) -> None:
    """Sign and POST a payload exactly as GitHub does (all headers, either content type), then print the answer
    and a link to the delivery's page."""
    from ghingest.app.banner import local_url
    from ghingest.app.receiver import PATH

    payload = _payload(file, action=action, release_id=release_id, tag=tag, repo=repo, prerelease=prerelease,
                       draft=draft, published_at=published_at)  # fmt: skip
    if print_only:
        sys.stdout.buffer.write(sender.encoded(payload, form=form) + b"\n")
        return
    base = (url or local_url(_settings())).rstrip("/")
    base = base.removesuffix(PATH)
    if secret is None:
        secret = _configured_secret()
    request = sender.hookshot_request(payload, event=event, secret=secret, delivery_id=delivery_id, form=form)
    try:
        response = sender.send(base + PATH, request)
    except Exception as exc:
        raise fail(f"could not reach {base + PATH}: {exc.__class__.__name__}", ExitCode.FAILED) from None
    typer.echo(f"{response.status_code} {response.text}")
    if response.status_code >= 300:
        raise typer.Exit(ExitCode.FAILED)
    typer.echo(f"Delivery page: {base}/deliveries/{quote(request.headers['X-GitHub-Delivery'], safe='')}")


def _payload(
    file: Path | None, *, action: str, release_id: int, tag: str, repo: str, prerelease: bool, draft: bool,
    published_at: str | None,
) -> bytes:  # fmt: skip
    """The body to send: the file's, or the sample release its flags describe."""
    if file is not None:
        try:
            payload = file.read_bytes()
            orjson.loads(payload)
        except (OSError, orjson.JSONDecodeError) as exc:
            raise bad_flag("--file", f"{file}: not a readable JSON file ({exc.__class__.__name__})") from None
        return payload
    iso_flag("--published-at", published_at)
    release = samples.release_payload(
        action=action, release_id=release_id, tag=tag, repository_name=repo, draft=draft,
        prerelease=prerelease or action == "prereleased", published_at=published_at or samples.PUBLISHED_AT,
    )  # fmt: skip
    return orjson.dumps(release)


def _configured_secret() -> str:
    from ghingest.app.credentials import webhook_secrets

    settings = _settings()
    try:
        return webhook_secrets(settings, generate=False).values[0]
    except ConfigError:
        raise fail(
            "no webhook secret: pass --secret, set GHINGEST_WEBHOOK_SECRETS, or start"
            f" `ghingest serve` once to generate {settings.data_dir / WEBHOOK_SECRET_FILE}"
        ) from None


def iso_flag(flag: str, value: str | None) -> float | None:
    """The epoch time of an ISO-8601 flag's value; a usage error naming the flag when it is not one."""
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise bad_flag(flag, f"{value!r} is not an ISO-8601 time such as 2024-05-01T00:00:00Z") from None


@app.command()
def reprocess(
    delivery: Annotated[str | None, typer.Option("--delivery", help="One delivery id.")] = None,
    since: Annotated[str | None, typer.Option(help="Every delivery received at or after (ISO-8601).")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only deliveries whose processing failed.")] = False,
) -> None:
    """Rebuild events and releases from the stored raw deliveries (after a parser fix, say), and say how many were
    processed and how many failed again (exit 1 if any did; 3 if nothing matched)."""
    if delivery is None and since is None and not failed:
        raise usage_error("choose what to reprocess: --delivery ID, --since TIME or --failed")
    selection = ReprocessSelection(delivery_id=delivery, since=iso_flag("--since", since), failed_only=failed)
    settings = _settings()
    runtime = _runtime(settings, generate=False)
    settled: Counter[Settle] = Counter()

    async def work() -> dict[str, Any]:
        marked = await operations.reprocess(runtime.backend, selection)
        if marked == 0:
            return {"queued": 0}
        worker = runtime.worker()
        with progress(*bar("reprocessing")) as display:
            task = display.add_task("reprocess", total=marked)
            while claimed := await worker.claim():
                settled.update(s.outcome for s in await worker.handle(claimed))
                display.update(task, completed=min(settled.total(), marked))
        result: dict[str, Any] = {
            "queued": marked,
            "processed": settled[Settle.DONE],
            "failed_again": settled[Settle.FAILED] + settled[Settle.RETRY],
        }
        if delivery is not None and (view := await runtime.backend.reads.get_delivery(delivery)) is not None:
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
        raise fail("no delivery matched", ExitCode.NOTHING_MATCHED)
    failed_again = settled[Settle.FAILED] + settled[Settle.RETRY]
    report = f"reprocessed {marked} deliveries: {settled[Settle.DONE]} processed, {failed_again} failed again"
    if settled[Settle.RETRY]:
        report += f" ({settled[Settle.RETRY]} to be retried by a running worker)"
    if (elsewhere := marked - settled.total()) > 0:
        report += f"; {elsewhere} taken by a running worker"
    console.print(report, soft_wrap=True, highlight=False, markup=False)
    if failed_again:
        raise typer.Exit(ExitCode.FAILED)


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
    _listen(create_api(runtime, receives_webhooks=False), settings, receives_webhooks=False,
            timeout_graceful_shutdown=3)  # fmt: skip


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
        raise bad_flag("NAME", "a user name is non-empty, has no ':' and no surrounding spaces")
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < 8:
        raise fail("use a password of at least 8 characters")
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

from ghingest.app.destinations_cli import destinations_app  # noqa: E402 - as replay

app.add_typer(destinations_app, name="destinations")


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        fail(str(exc))
        sys.exit(ExitCode.USAGE)
