"""Which credential each request carries: a token everywhere; or a GitHub App's JWT for the App's own resources and
an installation token for a repository's or an organization's; or none (public repositories' releases).

An App's installation on an owner is found with the JWT (`GET /repos/{owner}/{repo}/installation`, or
`/orgs/{org}/installation`) and kept per owner; its token (`POST /app/installations/{id}/access_tokens`) is kept
until `TOKEN_MARGIN` before its `expires_at`. JWTs are made here rather than by gidgethub so that their times come
from the injected clock (a test moves it; GitHub rejects a JWT issued in its future).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ghingest.adapters.github._transport import ANONYMOUS, Auth, Transport
from ghingest.core.github_hooks import epoch_of
from ghingest.ports.clock import Clock
from ghingest.ports.github_api import GitHubAuthError, GitHubRefused, GitHubUnavailable

TOKEN_MARGIN = 300.0  # s before an installation token's `expires_at` when a new one is made
JWT_BACKDATE = 60  # s: `iat` this far in the past, for clocks that run behind GitHub's (GitHub's advice)
JWT_LIFETIME = 600  # s from `iat` to `exp`: `exp` is 9 minutes ahead, within GitHub's 10
JWT_REFRESH = 420  # s after it is made, a JWT is replaced (well before it expires)
NO_INSTALLATION_TTL = 600.0  # s a repository or organization without the App's installation is not asked again


@dataclass(frozen=True, slots=True)
class AppCredentials:
    app_id: str
    private_key: str = field(repr=False)  # PEM


class Credentials:
    def __init__(self, transport: Transport, *, token: str | None, app: AppCredentials | None, clock: Clock) -> None:
        if token is not None and app is not None:
            raise ValueError("give a token or App credentials, not both")
        self._transport = transport
        self._clock = clock
        self._token = Auth("token", f"Bearer {token}") if token else None
        self._app = app
        self._key: RSAPrivateKey | None = None
        self._jwt: tuple[Auth, float] | None = None  # (auth, replace at)
        self._installations: dict[str, int] = {}  # owner (lower case) -> installation id
        self._not_installed: dict[str, float] = {}  # "owner" or "owner/repo" (lower case) -> asked again after
        self._tokens: dict[int, tuple[Auth, float]] = {}  # installation id -> (auth, replace at)
        self._lock = asyncio.Lock()

    @property
    def kind(self) -> str:
        return "token" if self._token else f"app:{self._app.app_id}" if self._app else "anonymous"

    def app_jwt(self) -> Auth:
        """The App's JWT: for `/app/…` resources only."""
        if self._app is None:
            raise GitHubAuthError("the App's resources need App credentials (an app id and a private key)")
        now = self._clock.now()
        if self._jwt is not None and now < self._jwt[1]:
            return self._jwt[0]
        issued = int(now) - JWT_BACKDATE
        claims = {"iat": issued, "exp": issued + JWT_LIFETIME, "iss": self._app.app_id}
        auth = Auth("app", "Bearer " + jwt.encode(claims, self._private_key(), algorithm="RS256"))
        self._jwt = (auth, now + JWT_REFRESH)
        return auth

    async def for_repository(self, owner: str, repo: str, *, anonymous: bool) -> Auth:
        """The credential for a repository's resources; with `anonymous`, none when the App is not installed there
        (a public repository's releases can still be read)."""
        if self._app is None:
            return self._token or ANONYMOUS
        route = "/repos/{owner}/{repo}/installation"
        return await self._installation_token(owner, route, {"owner": owner, "repo": repo}, anonymous=anonymous)

    async def for_organization(self, org: str) -> Auth:
        if self._app is None:
            return self._token or ANONYMOUS
        return await self._installation_token(org, "/orgs/{org}/installation", {"org": org}, anonymous=False)

    def forget(self, auth: Auth) -> None:
        """A credential GitHub refused (401): made again next time (a revoked token, a moved installation)."""
        if auth.bucket == "app":
            self._jwt = None
        elif auth.bucket.startswith("installation:"):
            installation = int(auth.bucket.removeprefix("installation:"))
            self._tokens.pop(installation, None)
            for owner, known in list(self._installations.items()):
                if known == installation:
                    del self._installations[owner]

    async def _installation_token(self, owner: str, route: str, url_vars: dict[str, str], *, anonymous: bool) -> Auth:
        async with self._lock:
            installation = await self._installation(owner, route, url_vars)
            if installation is None:
                if anonymous:
                    return ANONYMOUS
                raise GitHubAuthError(f"the App is not installed on {'/'.join(url_vars.values())}", status=404)
            now = self._clock.now()
            known = self._tokens.get(installation)
            if known is not None and now < known[1]:
                return known[0]
            try:
                answer = await self._transport.request(
                    "POST",
                    "/app/installations/{installation_id}/access_tokens",
                    {"installation_id": str(installation)},
                    route="/app/installations/{installation_id}/access_tokens",
                    auth=self.app_jwt(),
                )
            except GitHubRefused as exc:
                self._installations.pop(owner.lower(), None)
                if isinstance(exc, GitHubAuthError):
                    self._jwt = None
                raise GitHubAuthError(f"no installation token: {exc}", status=exc.status) from None
            data = answer.data
            token = data.get("token") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                raise GitHubUnavailable("the installation token's answer holds no token", status=answer.status)
            expires = epoch_of(data.get("expires_at"))
            auth = Auth(f"installation:{installation}", f"Bearer {token}")
            # Without a readable `expires_at`, the token serves this request only.
            self._tokens[installation] = (auth, now if expires is None else expires - TOKEN_MARGIN)
            return auth

    async def _installation(self, owner: str, route: str, url_vars: dict[str, str]) -> int | None:
        """The App's installation on the owner of a resource; known per owner once found. A resource it does not
        reach (not installed there, or not on that repository) is asked about again after `NO_INSTALLATION_TTL`."""
        known = self._installations.get(owner.lower())
        if known is not None:
            return known
        resource = "/".join(url_vars.values()).lower()
        now = self._clock.now()
        if now < self._not_installed.get(resource, now):
            return None
        try:
            answer = await self._transport.request("GET", route, url_vars, route=route, auth=self.app_jwt())
        except GitHubAuthError:
            self._jwt = None
            raise
        except GitHubRefused as exc:
            if exc.status != 404:
                raise
            self._not_installed[resource] = now + NO_INSTALLATION_TTL
            return None
        ident = answer.data.get("id") if isinstance(answer.data, dict) else None
        if not isinstance(ident, int) or isinstance(ident, bool) or ident <= 0:
            raise GitHubUnavailable(f"the installation on {owner} has no id", status=answer.status)
        self._installations[owner.lower()] = ident
        self._not_installed.pop(resource, None)
        return ident

    def _private_key(self) -> RSAPrivateKey:
        if self._key is None:
            assert self._app is not None
            try:
                key = load_pem_private_key(self._app.private_key.encode("utf-8"), password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                key = None
            if not isinstance(key, RSAPrivateKey):
                raise GitHubAuthError("the App's private key is not an unencrypted PEM RSA key") from None
            self._key = key
        return self._key
