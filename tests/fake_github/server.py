"""The fake GitHub: a uvicorn server in a thread on 127.0.0.1 (its answers are `api`'s), the helpers a test shapes
it with, and the webhook deliveries it makes — Hookshot's headers and signatures, from the server's event loop, so
a redelivery is sent after its 202 as on GitHub.
"""

from __future__ import annotations

import asyncio
import copy
import http
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
import uvloop
from starlette.requests import Request

from ghingest.core import signature
from ghingest.core.github_hooks import HookKind, HookRef
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from tests.fake_github import api, fixtures
from tests.fake_github.state import (
    App,
    Counters,
    Delivery,
    Fault,
    Hook,
    Installation,
    Repository,
    Seen,
    State,
    Window,
    new_app_key,
)

REDELIVERY_WINDOW = 3 * 86400.0  # s: github.com redelivers attempts of the last 3 days (GHES: 7)
TOKEN_TTL = 3600.0  # s: an installation token's life
DELIVERY_TIMEOUT = 10.0  # s: Hookshot's wait for a receiver's answer
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out "
    "to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000."
)


class FakeGitHub:
    """A GitHub API on 127.0.0.1 (`api_url`), with helpers to shape what it holds and answers."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        api_prefix: str = "",
        redelivery_window: float = REDELIVERY_WINDOW,
        token_ttl: float = TOKEN_TTL,
        delivery_timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        self.state = State(clock)
        self.api_prefix = api_prefix.rstrip("/")
        self.redelivery_window = redelivery_window
        self.token_ttl = token_ttl
        self.delivery_timeout = delivery_timeout
        self.hookshot = "GitHub-Hookshot/" + uuid.uuid4().hex[:7]
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = self.url + self.api_prefix
        config = uvicorn.Config(self._asgi, log_level="warning", access_log=False, lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="fake-github", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending = 0  # redeliveries accepted, not sent yet
        self._idle = threading.Condition(self.state.lock)

    # --- lifecycle --------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake GitHub did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def _run(self) -> None:
        # uvloop, as the other test servers: on asyncio's own loop every answer here waited ~40 ms for an ACK.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        try:
            await self._server.serve(sockets=[self._sock])
        finally:
            await self._client.aclose()

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.state.clock = clock

    # --- what the fake holds ----------------------------------------------------------------------------------

    def add_token(self, token: str | None = None) -> str:
        """A personal access token that works everywhere (returned; made up when not given)."""
        token = token or "ghp_" + uuid.uuid4().hex
        with self.state.lock:
            self.state.tokens.add(token)
        return token

    def add_org(self, login: str) -> None:
        with self.state.lock:
            self.state.account(login).type = "Organization"

    def add_repository(self, full_name: str, *, private: bool = False, owner_type: str | None = None) -> Repository:
        """A repository (its owner is made an organization unless `owner_type="User"`); spelt as given."""
        owner, _, name = full_name.partition("/")
        with self.state.lock:
            known = self.state.repository(full_name)
            if known is not None:
                known.private = private
                return known
            account = self.state.account(owner, kind=owner_type or "Organization")
            repo = Repository(self.state.next_id("repository"), account, name, private)
            self.state.repositories[full_name.lower()] = repo
            return repo

    def add_release(
        self,
        full_name: str,
        tag_name: str,
        *,
        name: str | None = None,
        body: str | None = None,
        draft: bool = False,
        prerelease: bool = False,
        author: str = "octocat",
        created_at: float | None = None,
        published_at: float | None = None,
    ) -> dict[str, Any]:
        """A release as the API shows it (the repository is added if need be); a copy is returned."""
        repo = self.add_repository(full_name) if self.repository(full_name) is None else self.repository(full_name)
        assert repo is not None
        with self.state.lock:
            created = self.clock.now() if created_at is None else created_at
            release = fixtures.release(
                self.api_url, full_name=repo.full_name, ident=self.state.next_id("release"), tag_name=tag_name,
                name=name if name is not None else tag_name, body=body, draft=draft, prerelease=prerelease,
                created_at=created, published_at=published_at if published_at is not None else created,
                author=fixtures.account(self.api_url, author, 583231, "User"),
            )  # fmt: skip
            repo.releases[release["id"]] = release
            return copy.deepcopy(release)

    def edit_release(self, full_name: str, release_id: int, **changes: Any) -> dict[str, Any]:
        """Change a release's API fields (times as epoch seconds or GitHub's text); a copy is returned."""
        with self.state.lock:
            release = self._repository(full_name).releases[release_id]
            for key, value in changes.items():
                release[key] = fixtures.iso(value) if key.endswith("_at") and isinstance(value, int | float) else value
            if "updated_at" not in changes:
                release["updated_at"] = fixtures.iso(self.clock.now())
            return copy.deepcopy(release)

    def delete_release(self, full_name: str, release_id: int) -> None:
        with self.state.lock:
            del self._repository(full_name).releases[release_id]

    def repository(self, full_name: str) -> Repository | None:
        with self.state.lock:
            return self.state.repository(full_name)

    def repo_hook(
        self, full_name: str, url: str | None = None, *, secret: str | None = None, content_type: str = "json"
    ) -> Hook:
        repo = self.repository(full_name) or self.add_repository(full_name)
        return self._add_hook(Hook(0, HookKind.REPOSITORY, url or "", secret, content_type, repository=repo))

    def org_hook(
        self, org: str, url: str | None = None, *, secret: str | None = None, content_type: str = "json"
    ) -> Hook:
        with self.state.lock:
            account = self.state.account(org)
            account.type = "Organization"
        return self._add_hook(Hook(0, HookKind.ORGANIZATION, url or "", secret, content_type, org=account))

    def app(self, app_id: int | None = None, *, slug: str | None = None, owner: str = "octo-org") -> App:
        """A GitHub App with a fresh RSA key pair: `app.private_key_pem` (or `app.credentials`) for the client."""
        pem, public = new_app_key()
        with self.state.lock:
            ident = app_id if app_id is not None else self.state.next_id("app")
            app = App(ident, slug or f"ghingest-test-{ident}", pem, public, self.state.account(owner))
            self.state.apps[app.app_id] = app
            return app

    def app_hook(
        self, app: App, url: str | None = None, *, secret: str | None = None, content_type: str = "json"
    ) -> Hook:
        hook = self._add_hook(Hook(0, HookKind.APP, url or "", secret, content_type, app=app))
        app.hook = hook
        return hook

    def install(self, app: App, account: str, *, repositories: Iterable[str] | None = None) -> Installation:
        """Install `app` on an account (an organization unless it is known as a user), on all its repositories or
        on the named ones (`OWNER/REPO`, added if need be)."""
        selected = (
            None if repositories is None else [self.repository(n) or self.add_repository(n) for n in repositories]
        )
        with self.state.lock:
            owner = self.state.account(account)
            installation = Installation(
                self.state.next_id("installation"), app, owner,
                None if selected is None else frozenset(r.id for r in selected),
            )  # fmt: skip
            self.state.installations[installation.id] = installation
            return installation

    def uninstall(self, installation: Installation) -> None:
        """Remove an installation; its tokens stop working."""
        with self.state.lock:
            self.state.installations.pop(installation.id, None)
            for token, (owner, _expires) in list(self.state.installation_tokens.items()):
                if owner is installation:
                    del self.state.installation_tokens[token]

    def set_rate_limit(
        self,
        remaining: int,
        *,
        token: str | None = None,
        installation: Installation | int | None = None,
        app: App | None = None,
        limit: int | None = None,
        reset_at: float | None = None,
    ) -> Window:
        """Set a credential's window (none named: unauthenticated requests'); `reset_at` epoch seconds."""
        bucket = _bucket(token=token, installation=installation, app=app)
        with self.state.lock:
            window = self.state.window(bucket)
            if limit is not None:
                window.limit = self.state.limits[bucket] = limit
            window.remaining = remaining
            window.used = max(0, window.limit - remaining)
            if reset_at is not None:
                window.reset = reset_at
            return window

    def window(
        self, *, token: str | None = None, installation: Installation | int | None = None, app: App | None = None
    ) -> Window:
        """A credential's window as it stands (a copy)."""
        with self.state.lock:
            return copy.copy(self.state.window(_bucket(token=token, installation=installation, app=app)))

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 503,
        retry_after: float | None = None,
        message: str | None = None,
        path_prefix: str | None = None,
        method: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `n` requests (whose path, below the API's root, starts with `path_prefix`) with
        `status`: a 403 or 429 says GitHub's secondary-limit message unless told otherwise, `retry_after` adds the
        header, `delay` waits before answering (beyond the client's timeout: a timeout). Costs no rate limit."""
        if message is None:
            message = SECONDARY_MESSAGE if status in (403, 429) else http.HTTPStatus(status).phrase
        fault = Fault(n, status, message, retry_after, path_prefix, method, dict(headers or {}), delay)
        with self.state.lock:
            self.state.faults.append(fault)

    # --- deliveries -------------------------------------------------------------------------------------------

    def deliver(
        self,
        hook: Hook | HookRef,
        event: str,
        payload: Mapping[str, Any] | bytes,
        *,
        action: str | None = None,
        guid: str | None = None,
    ) -> Delivery:
        """Deliver an event now, as GitHub does: POST it to the hook's URL, and list the attempt with the status it
        got (0 and "timed out" when nothing answered). From a test's event loop, `await adeliver(…)` instead."""
        future = asyncio.run_coroutine_threadsafe(
            self._deliver_on_loop(hook, event, payload, action, guid), self._running()
        )
        return future.result(timeout=self.delivery_timeout + 10)

    async def adeliver(
        self,
        hook: Hook | HookRef,
        event: str,
        payload: Mapping[str, Any] | bytes,
        *,
        action: str | None = None,
        guid: str | None = None,
    ) -> Delivery:
        future = asyncio.run_coroutine_threadsafe(
            self._deliver_on_loop(hook, event, payload, action, guid), self._running()
        )
        return await asyncio.wrap_future(future)

    async def _deliver_on_loop(
        self,
        hook: Hook | HookRef,
        event: str,
        payload: Mapping[str, Any] | bytes,
        action: str | None,
        guid: str | None,
    ) -> Delivery:
        target = self._hook(hook)
        try:
            data: Any = json.loads(payload) if isinstance(payload, bytes) else dict(payload)
        except ValueError:
            data = None  # bytes that are not JSON: sent as they are
        added = action is not None and isinstance(data, dict) and "action" not in data
        if added:
            data["action"] = action
        raw = fixtures.compact(data) if added or not isinstance(payload, bytes) else payload
        delivery = await self._send(
            target, guid=str(uuid.uuid4()) if guid is None else guid, event=event, body=raw, redelivery=False,
            action=action if action is not None else _field(data, "action"),
            installation_id=_nested_id(data, "installation"),
            repository_id=_nested_id(data, "repository") or (target.repository.id if target.repository else None),
        )  # fmt: skip
        with self.state.lock:
            self.state.counters.deliveries_sent += 1
        return delivery

    def record_delivery(
        self,
        hook: Hook | HookRef,
        event: str,
        *,
        action: str | None = None,
        guid: str | None = None,
        delivered_at: float | None = None,
        status_code: int = 200,
        status: str | None = None,
        redelivery: bool = False,
        payload: Mapping[str, Any] | None = None,
        installation_id: int | None = None,
        repository_id: int | None = None,
        duration: float = 0.05,
    ) -> Delivery:
        """List an attempt without sending anything (`payload` is what a redelivery of it sends)."""
        target = self._hook(hook)
        with self.state.lock:
            delivery = Delivery(
                id=self.state.next_id("delivery"), guid=str(uuid.uuid4()) if guid is None else guid,
                delivered_at=self.clock.now() if delivered_at is None else delivered_at, redelivery=redelivery,
                duration=duration, status=status or _status_text(status_code), status_code=status_code,
                event=event, action=action, installation_id=installation_id,
                repository_id=repository_id or (target.repository.id if target.repository else None),
                body=None if payload is None else fixtures.compact(payload),
            )  # fmt: skip
            target.add(delivery)
            return delivery

    def deliveries(self, hook: Hook | HookRef) -> list[Delivery]:
        """The hook's attempts, newest first (as listed)."""
        with self.state.lock:
            return self._hook(hook).newest_first()

    def wait_redeliveries(self, timeout: float = 10.0) -> None:
        """Wait until every accepted redelivery has been sent (and its attempt listed)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._pending == 0, timeout=timeout):
                raise AssertionError(f"{self._pending} redeliveries not sent within {timeout} s")

    # --- what the fake saw ------------------------------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        return self.state.counters

    @property
    def seen(self) -> list[Seen]:
        with self.state.lock:
            return list(self.state.seen)

    def route_count(self, route: str) -> int:
        """Requests to a route, `"GET /repos/{owner}/{repo}/releases"` (faulted and refused ones included)."""
        with self.state.lock:
            return self.state.counters.by_route[route]

    # --- internals --------------------------------------------------------------------------------------------

    def _running(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the fake GitHub is not running (use it as a context manager)")
        return self._loop

    def _repository(self, full_name: str) -> Repository:
        repo = self.state.repository(full_name)
        if repo is None:
            raise KeyError(full_name)
        return repo

    def _add_hook(self, hook: Hook) -> Hook:
        with self.state.lock:
            hook.id = self.state.next_id("hook")
            self.state.hooks[(hook.kind, hook.id)] = hook
            return hook

    def _hook(self, hook: Hook | HookRef) -> Hook:
        if isinstance(hook, Hook):
            return hook
        with self.state.lock:
            if hook.hook_id is None:
                found = next((h for (kind, _i), h in self.state.hooks.items() if kind is HookKind.APP), None)
            else:
                found = self.state.hooks.get((hook.kind, hook.hook_id))
        if found is None:
            raise KeyError(hook.key)
        return found

    async def _send(
        self,
        hook: Hook,
        *,
        guid: str,
        event: str,
        body: bytes,
        redelivery: bool,
        action: str | None,
        installation_id: int | None,
        repository_id: int | None,
    ) -> Delivery:
        """POST one attempt to the hook's URL, as Hookshot does, and list it."""
        assert self._client is not None
        if hook.content_type == "form":
            content, content_type = (
                urlencode({"payload": body.decode("utf-8")}).encode("ascii"),
                "application/x-www-form-urlencoded",
            )
        else:
            content, content_type = body, "application/json"
        target_type, target_id = hook.target
        headers = {
            "Accept": "*/*",
            "Content-Type": content_type,
            "User-Agent": self.hookshot,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": str(hook.id),
            "X-GitHub-Hook-Installation-Target-ID": str(target_id),
            "X-GitHub-Hook-Installation-Target-Type": target_type,
        }
        if hook.secret is not None:
            key = hook.secret.encode("utf-8")
            headers["X-Hub-Signature"] = signature.sign_sha1(content, key)
            headers["X-Hub-Signature-256"] = signature.sign(content, key)
        delivered_at = self.clock.now()
        started = time.monotonic()
        answer_headers: dict[str, str] = {}
        answer_body = ""
        try:
            if not hook.url:
                raise httpx.ConnectError("the hook has no URL")
            response = await self._client.post(
                hook.url, content=content, headers=headers, timeout=self.delivery_timeout
            )
            code, answer_headers, answer_body = response.status_code, dict(response.headers), response.text[:1024]
        except httpx.HTTPError:
            code = 0
        with self.state.lock:
            delivery = Delivery(
                id=self.state.next_id("delivery"), guid=guid, delivered_at=delivered_at, redelivery=redelivery,
                duration=round(time.monotonic() - started, 2), status=_status_text(code), status_code=code,
                event=event, action=action, installation_id=installation_id, repository_id=repository_id,
                body=body, content_type=content_type, request_headers=headers, response_headers=answer_headers,
                response_body=answer_body,
            )  # fmt: skip
            hook.add(delivery)
        return delivery

    async def _redeliver(self, hook: Hook, original: Delivery) -> None:
        try:
            body = (
                original.body
                if original.body is not None
                else fixtures.compact({"action": original.action} if original.action else {})
            )
            await self._send(
                hook, guid=original.guid, event=original.event, body=body, redelivery=True, action=original.action,
                installation_id=original.installation_id, repository_id=original.repository_id,
            )  # fmt: skip
        finally:
            with self._idle:
                self.state.counters.redeliveries_sent += 1
                self._pending -= 1
                self._idle.notify_all()

    def accept_redelivery(self, hook: Hook, original: Delivery) -> Callable[[], None]:
        """Count an accepted redelivery (under the state's lock); what starts sending it once answered."""
        self.state.counters.redeliveries_requested += 1
        self._pending += 1

        def start() -> None:
            task = asyncio.get_running_loop().create_task(self._redeliver(hook, original))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return start

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        await request.body()
        response = await api.answer(self, request)
        await response(scope, receive, send)


def _status_text(code: int) -> str:
    if code == 0:
        return "timed out"
    return "OK" if 200 <= code < 300 else f"Invalid HTTP Response: {code}"


def _field(data: Any, key: str) -> Any:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _nested_id(data: Any, key: str) -> int | None:
    value = data.get(key) if isinstance(data, dict) else None
    ident = value.get("id") if isinstance(value, dict) else None
    return ident if isinstance(ident, int) and not isinstance(ident, bool) else None


def _bucket(*, token: str | None, installation: Installation | int | None, app: App | None) -> str:
    if token is not None:
        return f"token:{token}"
    if installation is not None:
        return f"installation:{installation if isinstance(installation, int) else installation.id}"
    if app is not None:
        return f"app:{app.id}"
    return "anonymous"
