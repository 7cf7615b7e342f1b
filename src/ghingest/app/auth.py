"""Who may read, and who is signed in to the dashboard.

- The read API: `Authorization: Bearer <token>` with a token from `GHINGEST_API_TOKENS` (or the generated one), or a
  dashboard session. An invalid bearer token fails closed, whatever cookie comes with it.
- The dashboard: a signed session cookie (HttpOnly, SameSite=Lax, Secure over HTTPS), given by signing in with an
  API token or a user of the users file; or, in SSO mode, an identity header trusted only from configured proxies.
- Every state-changing dashboard request is a POST carrying the session's CSRF token (and a same-origin `Origin`).
- Roles: a `viewer` reads; an `operator` may also change state (reprocess, replay, retry, forward again). API
  tokens are operators; users-file users have the role their line names; SSO users the configured one.
- Sign-in attempts are throttled per user name and per client address (`SignInThrottle`), passwords are verified on
  a pool of their own (`PasswordPool`), and sign-outs are stored in the database (`RevocationCache`).

Tokens are compared in constant time. The webhook route never needs a token: it is authenticated by signature.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

from ghingest.app.password_pool import PasswordPool, PoolBusy
from ghingest.app.proxies import TrustedProxies, real_peer
from ghingest.app.revocations import RevocationCache
from ghingest.app.users import Role, UsersFile
from ghingest.core.throttle import SignInThrottle
from ghingest.core.time import now as wall_clock

SESSION_COOKIE = "ghingest_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_FORM_MAX_AGE = 3600
Method = Literal["bearer", "token", "password", "sso"]
OPERATOR_REQUIRED = "operator role required"
MAX_NAME = 256  # longer user names are cut to this before they key a throttle bucket
BUSY_RETRY_AFTER = 1.0


class TokenAuthenticator:
    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = tuple(token.encode("utf-8") for token in tokens)

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        offered = token.encode("utf-8")
        matched = False
        for known in self._tokens:
            matched |= hmac.compare_digest(known, offered)
        return matched

    def bearer_of(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return credentials.strip() or None

    def index_of(self, token: str) -> int | None:
        offered = token.encode("utf-8")
        found: int | None = None
        for index, known in enumerate(self._tokens):
            if hmac.compare_digest(known, offered):
                found = index
        return found

    def all(self) -> tuple[bytes, ...]:
        return self._tokens


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    method: Method
    csrf: str  # the token every POST of this principal must carry ('' for bearer requests: they cannot POST forms)
    session_id: str | None = None
    role: Role = "viewer"

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def bearer_principal(tokens: TokenAuthenticator, token: str | None) -> Principal | None:
    """The principal of a bearer token: `api token <n>` (its place in `GHINGEST_API_TOKENS`, from 1, so that the
    audit log tells tokens apart without naming them), an operator (an API token is the admin credential)."""
    index = tokens.index_of(token) if token else None
    return None if index is None else Principal(f"api token {index + 1}", "bearer", csrf="", role="operator")


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    outcome: Literal["ok", "failed", "throttled", "busy"]
    cookie: str | None = None
    retry_after: float = 0.0  # throttled or busy: seconds until an attempt may be made


class Gate:
    """Identifies the principal of a request (bearer, session cookie, trusted SSO header) and issues sessions."""

    def __init__(
        self,
        *,
        tokens: TokenAuthenticator,
        users: UsersFile,
        secret: str,
        max_age: int,
        throttle: SignInThrottle,
        password_pool: PasswordPool,
        revocations: RevocationCache,
        sso_header: str | None = None,
        trusted_proxies: Sequence[str] = (),
        sso_default_role: Role = "viewer",
        sso_operators: Sequence[str] = (),
        https: bool = False,
    ) -> None:
        self.tokens = tokens
        self.users = users
        self._secret = secret.encode("utf-8")
        self._sessions = URLSafeTimedSerializer(secret, salt="ghingest.session")
        self._login_forms = URLSafeTimedSerializer(secret, salt="ghingest.login-form")
        self.flashes = URLSafeTimedSerializer(secret, salt="ghingest.flash")  # what an action did (dashboard.flash)
        self.max_age = max_age
        self.throttle = throttle
        self.password_pool = password_pool
        self.revocations = revocations
        self.sso_header = sso_header
        self._proxies = TrustedProxies(trusted_proxies)
        self._sso_default_role: Role = sso_default_role
        self._sso_operators = frozenset(name.casefold() for name in sso_operators)
        self._https = https

    # --- identifying ----------------------------------------------------------------------------------------------

    async def identify(self, request: Request, *, bearer: bool = False) -> Principal | None:
        if bearer:
            token = self.tokens.bearer_of(request)
            if token is not None or "authorization" in request.headers:
                return bearer_principal(self.tokens, token)
        return await self.from_session(request) or self.from_sso(request)

    async def from_session(self, request: Request) -> Principal | None:
        """The session cookie's principal, unless the session was signed out (in any process, `RevocationCache`)."""
        principal = self.from_cookie(request.cookies.get(SESSION_COOKIE))
        if principal is None or principal.session_id is None:
            return principal
        return None if await self.revocations.is_revoked(principal.session_id) else principal

    def from_cookie(self, raw: str | None) -> Principal | None:
        """A valid, unexpired cookie whose key still holds, with the role that applies now (not revocation)."""
        if not raw:
            return None
        try:
            data: Any = self._sessions.loads(raw, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("sid", "u", "m", "k", "c")):
            return None
        method, name, key = data["m"], data["u"], data["k"]
        role: Role
        if method == "token":
            if not any(hmac.compare_digest(key, self._key_of(known)) for known in self.tokens.all()):
                return None
            role = "operator"
        elif method == "password":
            # The users file as it is now: a changed password ends the session, a changed role applies at once
            # (the cookie's own "r" only records the role it was issued with).
            user = self.users.lookup(name)
            if user is None or not hmac.compare_digest(key, user.fingerprint):
                return None
            role = user.role
        else:
            return None
        return Principal(name, method, csrf=data["c"], session_id=data["sid"], role=role)

    def from_sso(self, request: Request) -> Principal | None:
        # The TCP peer itself, never an address taken from X-Forwarded-For (`ghingest.app.proxies`).
        if not self.sso_header or not self._proxies.trusts(real_peer(request)):
            return None
        name = request.headers.get(self.sso_header, "").strip()
        if not name or len(name) > MAX_NAME:
            return None
        csrf = hmac.new(self._secret, b"sso\0" + name.encode("utf-8"), hashlib.sha256).hexdigest()
        return Principal(name, "sso", csrf=csrf, role=self.sso_role_of(name))

    def sso_role_of(self, name: str) -> Role:
        return "operator" if name.casefold() in self._sso_operators else self._sso_default_role

    # --- signing in and out ---------------------------------------------------------------------------------------

    def _key_of(self, token: bytes) -> str:
        return hmac.new(self._secret, b"token\0" + token, hashlib.sha256).hexdigest()[:32]

    def session_for_token(self, token: str) -> str | None:
        index = self.tokens.index_of(token)
        if index is None:
            return None
        return self._new_session(f"token {index + 1}", "token", self._key_of(token.encode("utf-8")), "operator")

    def session_for_password(self, name: str, password: str) -> str | None:
        """Verify a password (argon2: slow on purpose; call it on `password_pool`) and make a session cookie."""
        user = self.users.verify(name, password)
        if user is None:
            return None
        return self._new_session(user.name, "password", user.fingerprint, user.role)

    def sign_in_with_token(self, token: str, client: str) -> SignInAttempt:
        """A token from the sign-in form or link, throttled per client address."""
        wait = self.throttle.attempt(client)
        if wait > 0:
            return SignInAttempt("throttled", retry_after=wait)
        cookie = self.session_for_token(token)
        if cookie is None:
            return SignInAttempt("failed")
        self.throttle.succeeded(client)
        return SignInAttempt("ok", cookie)

    async def sign_in_with_password(self, name: str, password: str, client: str) -> SignInAttempt:
        """A users-file sign-in, throttled per user name and per client address, verified on the password pool."""
        user_key = name[:MAX_NAME]
        wait = self.throttle.attempt(client, user_key)
        if wait > 0:
            return SignInAttempt("throttled", retry_after=wait)
        try:
            cookie = await self.password_pool.run(self.session_for_password, name, password)
        except PoolBusy:
            self.throttle.cancel(client, user_key)  # nothing was tried
            return SignInAttempt("busy", retry_after=BUSY_RETRY_AFTER)
        if cookie is None:
            return SignInAttempt("failed")
        self.throttle.succeeded(client, user_key)
        return SignInAttempt("ok", cookie)

    def _new_session(self, name: str, method: Method, key: str, role: Role) -> str:
        data = {
            "sid": secrets.token_urlsafe(16),
            "u": name,
            "m": method,
            "k": key,
            "c": secrets.token_urlsafe(24),
            "r": role,
        }
        return self._sessions.dumps(data)

    async def sign_out(self, principal: Principal) -> None:
        """End the session for good, in every process on the database, even if a copy of its cookie turns up
        again (raises `StoreUnavailable` when the database cannot record it; this process refuses it anyway)."""
        if principal.session_id is not None:
            await self.revocations.revoke(principal.session_id, wall_clock() + self.max_age)

    def secure(self, request: Request) -> bool:
        return self._https or request.url.scheme == "https"

    def set_cookie(self, response: Response, request: Request, value: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure(request),
        )

    def clear_cookie(self, response: Response, request: Request) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=self.secure(request))

    # --- CSRF -----------------------------------------------------------------------------------------------------

    @staticmethod
    def same_origin(request: Request) -> bool:
        """A browser's `Origin` (or, without one, `Referer`) must name this host; requests without either pass
        on to the token check."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.headers.get("host", "")

    def csrf_ok(self, request: Request, principal: Principal, offered: str | None) -> bool:
        if not principal.csrf or not offered or not self.same_origin(request):
            return False
        return hmac.compare_digest(principal.csrf.encode("utf-8"), offered.encode("utf-8"))

    def login_form_token(self) -> str:
        return self._login_forms.dumps(secrets.token_urlsafe(8))

    def login_form_ok(self, request: Request, offered: str | None) -> bool:
        if not offered or not self.same_origin(request):
            return False
        try:
            self._login_forms.loads(offered, max_age=LOGIN_FORM_MAX_AGE)
        except BadSignature:
            return False
        return True


async def require_reader(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries a valid bearer token or a dashboard session."""
    gate: Gate | None = getattr(request.app.state, "gate", None)
    if gate is not None:
        principal = await gate.identify(request, bearer=True)
        if principal is not None:
            if (
                principal.method != "bearer"
                and request.method not in SAFE_METHODS
                and not gate.csrf_ok(request, principal, request.headers.get(CSRF_HEADER))
            ):
                # A browser session may change state only with the session's CSRF token (header X-CSRF-Token).
                raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=f"{CSRF_HEADER} is missing or wrong")
            request.state.principal = principal
            return
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid 'Authorization: Bearer <token>' header or a dashboard session is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    authenticator: TokenAuthenticator = request.app.state.authenticator
    bearer = bearer_principal(authenticator, authenticator.bearer_of(request))
    if bearer is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid 'Authorization: Bearer <token>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.principal = bearer


def require_bearer(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries a valid API token in `Authorization: Bearer` (a write
    that only a script or the CLI makes; a browser session has the dashboard's CSRF-protected forms instead)."""
    authenticator: TokenAuthenticator = request.app.state.authenticator
    if not authenticator.valid(authenticator.bearer_of(request)):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid 'Authorization: Bearer <token>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_operator(request: Request) -> None:
    """FastAPI dependency, after `require_reader`: 403 unless the principal has the operator role."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None or not principal.operator:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=OPERATOR_REQUIRED)
