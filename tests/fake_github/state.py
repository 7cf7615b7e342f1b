"""The fake GitHub's state: accounts, repositories and their releases, hooks and their deliveries, Apps, their
installations and tokens, each credential's rate-limit window, injected faults and counters. Plain objects behind
one lock (the server's thread and the test's thread both touch them); no HTTP here (`server`).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ghingest.adapters.github import AppCredentials
from ghingest.core.github_hooks import HookKind, HookRef
from ghingest.ports.clock import Clock
from tests.fake_github import fixtures

WINDOW = 3600.0  # s: GitHub's primary rate-limit window
ANONYMOUS_LIMIT = 60  # requests per window without a credential (GitHub: per IP address)
AUTHENTICATED_LIMIT = 5000  # with a token, an installation token or an App's JWT
JWT_MAX_AHEAD = 600  # s: GitHub refuses a JWT whose `exp` is further ahead than 10 minutes


@dataclass(eq=False)
class Account:
    login: str
    id: int
    type: str  # "User" or "Organization"


@dataclass(eq=False)
class Repository:
    id: int
    owner: Account
    name: str
    private: bool
    releases: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> the API's release object

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    def listed_releases(self, *, drafts: bool) -> list[dict[str, Any]]:
        """Newest first, as GitHub lists them (drafts only for a credential with access)."""
        items = [r for r in self.releases.values() if drafts or not r["draft"]]
        return sorted(items, key=lambda r: (r["created_at"], r["id"]), reverse=True)


@dataclass(eq=False)
class Delivery:
    """One attempt of a hook's, as `GET …/deliveries` lists it; `body` is what was (or would be) sent."""

    id: int
    guid: str
    delivered_at: float
    redelivery: bool
    duration: float
    status: str
    status_code: int
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    body: bytes | None = None  # None: recorded without a payload (`record_delivery`)
    content_type: str = "application/json"
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    throttled_at: float | None = None

    def item(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "guid": self.guid,
            "delivered_at": fixtures.iso(self.delivered_at),
            "redelivery": self.redelivery,
            "duration": self.duration,
            "status": self.status,
            "status_code": self.status_code,
            "event": self.event,
            "action": self.action,
            "installation_id": self.installation_id,
            "repository_id": self.repository_id,
            "throttled_at": fixtures.iso(self.throttled_at),
        }


@dataclass(eq=False)
class Hook:
    id: int
    kind: HookKind
    url: str  # where deliveries are POSTed (tests may change it)
    secret: str | None
    content_type: str = "json"  # or "form"
    repository: Repository | None = None
    org: Account | None = None
    app: App | None = None
    _keys: list[tuple[float, int]] = field(default_factory=list)  # (delivered_at, id), ascending
    _items: list[Delivery] = field(default_factory=list)  # in `_keys`' order
    _by_id: dict[int, Delivery] = field(default_factory=dict)

    @property
    def ref(self) -> HookRef:
        """The hook as the client names it."""
        if self.kind is HookKind.REPOSITORY:
            assert self.repository is not None
            return HookRef(self.kind, self.id, owner=self.repository.owner.login, repo=self.repository.name)
        if self.kind is HookKind.ORGANIZATION:
            assert self.org is not None
            return HookRef(self.kind, self.id, org=self.org.login)
        return HookRef(self.kind, self.id)

    @property
    def target(self) -> tuple[str, int]:
        """`X-GitHub-Hook-Installation-Target-Type` and `-ID`."""
        if self.repository is not None:
            return "repository", self.repository.id
        if self.org is not None:
            return "organization", self.org.id
        assert self.app is not None
        return "integration", self.app.id

    def add(self, delivery: Delivery) -> None:
        key = (delivery.delivered_at, delivery.id)
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
            self._items.append(delivery)
        else:
            at = bisect_left(self._keys, key)
            self._keys.insert(at, key)
            self._items.insert(at, delivery)
        self._by_id[delivery.id] = delivery

    def get(self, ident: int) -> Delivery | None:
        return self._by_id.get(ident)

    def newest_first(self) -> list[Delivery]:
        return self._items[::-1]

    def page(self, cursor: str | None, per_page: int) -> tuple[list[Delivery], str | None]:
        """One page, newest first, after `cursor` (the oldest item of the page before); and the next cursor."""
        end = len(self._items)
        if cursor is not None:
            after = self._by_id.get(_cursor_id(cursor) or -1)
            end = 0 if after is None else bisect_left(self._keys, (after.delivered_at, after.id))
        start = max(0, end - per_page)
        page = self._items[start:end][::-1]
        return page, (f"v1_{self._items[start].id}" if start > 0 else None)


@dataclass(eq=False)
class App:
    id: int
    slug: str
    private_key_pem: str  # what the test gives the client
    public_key: rsa.RSAPublicKey  # what the fake verifies JWTs with
    owner: Account
    hook: Hook | None = None

    @property
    def app_id(self) -> str:
        return str(self.id)

    @property
    def credentials(self) -> AppCredentials:
        return AppCredentials(app_id=self.app_id, private_key=self.private_key_pem)


@dataclass(eq=False)
class Installation:
    id: int
    app: App
    account: Account
    repositories: frozenset[int] | None = None  # None: all of the account's

    def covers(self, repository: Repository) -> bool:
        if repository.owner is not self.account:
            return False
        return self.repositories is None or repository.id in self.repositories


@dataclass(eq=False)
class Window:
    """A credential's primary rate-limit window."""

    limit: int
    remaining: int
    reset: float
    used: int = 0
    resource: str = "core"

    def refresh(self, now: float) -> None:
        if now >= self.reset:
            self.remaining, self.used, self.reset = self.limit, 0, now + WINDOW

    def spend(self) -> None:
        self.remaining = max(0, self.remaining - 1)
        self.used += 1

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-reset": str(int(self.reset)),
            "x-ratelimit-resource": self.resource,
        }


@dataclass(eq=False)
class Fault:
    """An answer forced on the next `count` matching requests, before authentication and at no rate-limit cost."""

    count: int
    status: int
    message: str
    retry_after: float | None = None
    path_prefix: str | None = None
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # s before answering (longer than the client's timeout: a timeout)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_prefix is None or path.startswith(self.path_prefix)
        )


@dataclass
class Counters:
    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)  # "GET /repos/{owner}/{repo}/releases" -> n
    costly: int = 0  # answers that spent a request of a rate-limit window
    not_modified: int = 0  # 304s (free)
    rate_limited: int = 0  # primary-limit 403s
    faults: int = 0  # injected answers
    unauthorized: int = 0  # 401s
    deliveries_sent: int = 0  # `deliver` calls that POSTed
    redeliveries_requested: int = 0  # 202s to `…/attempts`
    redeliveries_sent: int = 0  # redeliveries POSTed (answered or not)


@dataclass(frozen=True)
class Seen:
    """A request the fake received (headers lower-cased)."""

    method: str
    route: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Identity:
    """Who a request's `Authorization` says it is."""

    kind: str  # "anonymous", "token", "installation", "app", or "invalid" (a token or JWT that does not work)
    bucket: str  # whose rate-limit window it spends
    app: App | None = None
    installation: Installation | None = None
    jwt: bool = False  # for "invalid": it looked like a JWT


class State:
    def __init__(self, clock: Clock) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self._ids = {
            kind: itertools.count(start)
            for kind, start in {
                "account": 5_000_001, "repository": 180_000_001, "release": 150_000_001, "hook": 400_000_001,
                "delivery": 12_000_000_001, "app": 100_001, "installation": 42_000_001,
            }.items()
        }  # fmt: skip
        self.accounts: dict[str, Account] = {}  # login (lower case) -> account
        self.repositories: dict[str, Repository] = {}  # full name (lower case) -> repository
        self.hooks: dict[tuple[HookKind, int], Hook] = {}
        self.apps: dict[str, App] = {}  # app id (as text) -> app
        self.installations: dict[int, Installation] = {}
        self.tokens: set[str] = set()  # personal access tokens that work
        self.installation_tokens: dict[str, tuple[Installation, float]] = {}  # token -> (installation, expires at)
        self.windows: dict[str, Window] = {}
        self.limits: dict[str, int] = {}  # bucket -> its window's size, when not the default
        self.faults: list[Fault] = []
        self.counters = Counters()
        self.seen: list[Seen] = []

    def next_id(self, kind: str) -> int:
        return next(self._ids[kind])

    # --- accounts and repositories ----------------------------------------------------------------------------

    def account(self, login: str, *, kind: str = "User") -> Account:
        known = self.accounts.get(login.lower())
        if known is None:
            known = self.accounts[login.lower()] = Account(login, self.next_id("account"), kind)
        return known

    def repository(self, full_name: str) -> Repository | None:
        return self.repositories.get(full_name.lower())

    # --- credentials ------------------------------------------------------------------------------------------

    def identify(self, authorization: str | None) -> Identity:
        if authorization is None:
            return Identity("anonymous", "anonymous")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() not in ("bearer", "token") or not value:
            return Identity("invalid", "anonymous")
        if value.count(".") == 2:
            app = self._verify_jwt(value)
            if app is None:
                return Identity("invalid", "anonymous", jwt=True)
            return Identity("app", f"app:{app.id}", app=app)
        if value in self.tokens:
            return Identity("token", f"token:{value}")
        issued = self.installation_tokens.get(value)
        if issued is not None and self.clock.now() < issued[1]:
            return Identity("installation", f"installation:{issued[0].id}", installation=issued[0])
        return Identity("invalid", "anonymous")

    def _verify_jwt(self, token: str) -> App | None:
        """RS256 signed by the App named in `iss`, issued in the past, expiring in the next 10 minutes."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        app = self.apps.get(str(unverified.get("iss")))
        if app is None:
            return None
        try:
            claims = jwt.decode(
                token,
                app.public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "require": ["iat", "exp"]},
            )
        except jwt.PyJWTError:
            return None
        iat, exp, now = claims.get("iat"), claims.get("exp"), self.clock.now()
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            return None
        if not (iat <= now < exp <= now + JWT_MAX_AHEAD):
            return None
        return app

    def issue_token(self, installation: Installation, ttl: float) -> tuple[str, float]:
        token = "ghs_" + secrets.token_urlsafe(27)
        expires_at = self.clock.now() + ttl
        self.installation_tokens[token] = (installation, expires_at)
        return token, expires_at

    def installation_of(self, app: App, account: Account) -> Installation | None:
        return next((i for i in self.installations.values() if i.app is app and i.account is account), None)

    def window(self, bucket: str) -> Window:
        now = self.clock.now()
        window = self.windows.get(bucket)
        if window is None:
            default = ANONYMOUS_LIMIT if bucket == "anonymous" else AUTHENTICATED_LIMIT
            limit = self.limits.get(bucket, default)
            window = self.windows[bucket] = Window(limit=limit, remaining=limit, reset=now + WINDOW)
        window.refresh(now)
        return window

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None


def new_app_key() -> tuple[str, rsa.RSAPublicKey]:
    """An RSA key pair as GitHub makes for an App: the private key's PEM, and the public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return pem.decode("ascii"), key.public_key()


def _cursor_id(cursor: str) -> int | None:
    digits = cursor.removeprefix("v1_")
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 19 else None
