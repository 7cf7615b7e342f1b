"""Who may read: `Authorization: Bearer <token>` with a token from `GHINGEST_API_TOKENS` (or the generated one).

Tokens are compared in constant time. The webhook route never needs a token: it is authenticated by signature.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi import HTTPException, Request, status


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


def require_reader(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries a valid bearer token."""
    authenticator: TokenAuthenticator = request.app.state.authenticator
    if not authenticator.valid(authenticator.bearer_of(request)):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid 'Authorization: Bearer <token>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
