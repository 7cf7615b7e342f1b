"""GitHub's `GET /meta`, for the networks its webhook deliveries come from (`hooks`): one unauthenticated,
conditional request per call, its body read within a bound and parsed by `core.networks.parse_meta_hooks`.

The base URL is the REST API's: `https://api.github.com`, or `https://HOST/api/v3` on GitHub Enterprise Server.
The request sends `If-None-Match` with the last ETag (GitHub answers `304`, which does not count against the rate
limit), `Accept: application/vnd.github+json` and `X-GitHub-Api-Version`; no credential, no cookie, no proxy or
`.netrc` from the environment (`trust_env=False`), no redirect followed. The whole exchange has one deadline.

Every failure is `MetaUnavailable`, whose message names the URL and what went wrong (a status, an exception's class,
an entry's position) but never quotes the answer.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

import httpx

import ghingest
from ghingest.core.errors import GhingestError
from ghingest.core.networks import MAX_META_BYTES, InvalidNetworks, NetworkSet, parse_meta_hooks

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
TIMEOUT = 10.0  # seconds for the whole exchange
_ETAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e]{0,200}"')  # an entity tag as RFC 9110 writes it; anything else: none


class MetaUnavailable(GhingestError):
    """`/meta` could not be fetched, or its answer is not a usable list of hook networks."""


class _NotModified(Enum):
    NOT_MODIFIED = "not_modified"


NOT_MODIFIED: Final = _NotModified.NOT_MODIFIED  # the ETag sent still matches: the list held is current
NotModified = Literal[_NotModified.NOT_MODIFIED]


@dataclass(frozen=True, slots=True)
class MetaHooks:
    networks: NetworkSet  # never empty
    etag: str | None  # for the next request's If-None-Match; None when GitHub sent none (or a malformed one)


def is_entity_tag(text: str) -> bool:
    """Whether `text` is an ETag that can be sent back as it is (`"…"` or `W/"…"`, visible ASCII, ≤ 200)."""
    return _ETAG.fullmatch(text) is not None


def meta_url(api_url: str) -> str:
    return api_url.rstrip("/") + "/meta"


class MetaClient:
    """One connection pool for every fetch of one API's `/meta`; `transport` replaces the network (tests)."""

    def __init__(
        self, api_url: str, *, timeout: float = TIMEOUT, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = meta_url(api_url)
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            headers={
                "Accept": ACCEPT,
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": f"ghingest/{ghingest.__version__}",
            },
        )

    async def fetch(self, *, etag: str | None = None) -> MetaHooks | NotModified:
        """The `hooks` networks and the answer's ETag, or `NOT_MODIFIED` when `etag` still matches."""
        headers = {"If-None-Match": etag} if etag else {}
        try:
            async with asyncio.timeout(self._timeout):
                return await self._fetch(headers, conditional=bool(etag))
        except TimeoutError:
            raise MetaUnavailable(f"GET {self.url}: no complete answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise MetaUnavailable(f"GET {self.url}: {exc.__class__.__name__}") from None

    async def _fetch(self, headers: dict[str, str], *, conditional: bool) -> MetaHooks | NotModified:
        async with self._client.stream("GET", self.url, headers=headers) as response:
            status = response.status_code
            if status == 304 and conditional:
                return NOT_MODIFIED
            if status != 200:
                raise MetaUnavailable(f"GET {self.url}: HTTP {status}")
            body = await _bounded(response)
            etag = response.headers.get("etag")
        try:
            networks = parse_meta_hooks(body)
        except InvalidNetworks as exc:
            raise MetaUnavailable(f"GET {self.url}: {exc.summary}") from None
        return MetaHooks(networks, etag if etag and is_entity_tag(etag) else None)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _bounded(response: httpx.Response) -> bytes:
    """The (decoded) body, refused as soon as it grows past `MAX_META_BYTES`: never buffered beyond it."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_META_BYTES:
        raise MetaUnavailable(f"GET {response.request.url}: a body of {declared} bytes, over {MAX_META_BYTES}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_META_BYTES:
            raise MetaUnavailable(f"GET {response.request.url}: a body over {MAX_META_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
