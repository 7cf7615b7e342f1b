"""The forward client: a `ForwardTransport` over aiohttp, one `ClientSession` (a connection pool) per destination.

Why aiohttp (ADR 0006, addendum 2): measured side by side on this path it costs what the hand-written h11 client
cost (within a few per cent, forwards/s and CPU per forward), while httpx costs many times as much; so a well-kept
library replaced the hand-written client, with TLS verification, a custom CA bundle and HTTP proxies its own.

What it keeps of the forwarder's contract:
- one pool per destination, at most `size` connections (`TCPConnector(limit=size)`), kept alive for
  `KEEPALIVE_SECONDS` (less than the 5 s after which common servers close an idle connection);
- at most `max_body` bytes of an answer read: a longer body is cut and its connection closed instead of drained;
- no redirects (a 3xx is an answer), no proxy or `.netrc` from the environment (`trust_env=False`), no cookies, no
  decompression, no `Accept`/`Accept-Encoding` added; Host, Content-Length and framing are the client's;
- `https://` verified against the system store or the destination's `ca_bundle`;
- `proxy = "http://[user:password@]host:port"`: an `https://` destination is reached through a CONNECT tunnel (TLS
  end to end), an `http://` one by absolute-form requests to the proxy — what curl, httpx and aiohttp do;
- a request whose connection closed before any byte of the answer (a kept-alive connection the server had just
  closed) is sent once more at once; once an answer has begun, nothing is sent again.

Errors are `TransportError`s whose messages name the host and port, never the URL's path, a body or a credential.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from ghingest.app.forward_transport import (
    Answer,
    ConnectFailed,
    ProtocolFailed,
    ProxyFailed,
    TlsFailed,
    TransportOptions,
)

KEEPALIVE_SECONDS = 4.0
MAX_HEAD_LINE = 16 * 1024  # the longest status or header line accepted
_SKIPPED = frozenset({"host", "content-length", "connection", "transfer-encoding"})  # set here, never by the caller
_NOT_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters (a line break could inject a header)


class Client:
    """POSTs to one destination's origin over a pool of its own."""

    def __init__(self, options: TransportOptions) -> None:
        parts = urlsplit(options.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an absolute http:// or https:// URL is required")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._origin = f"{parts.scheme}://{host}:{self.port}"
        self._max_body = options.max_body
        self._proxy = options.proxy or None
        self._proxy_at = _host_and_port(options.proxy) if options.proxy else None
        context = ssl.create_default_context(cafile=options.ca_bundle) if parts.scheme == "https" else None
        connector = aiohttp.TCPConnector(
            limit=options.size, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS, ssl=context or True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
            timeout=aiohttp.ClientTimeout(total=None),  # the caller's asyncio.timeout is the limit
            max_line_size=MAX_HEAD_LINE,
            max_field_size=MAX_HEAD_LINE,
        )

    async def post(self, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        url = self._origin + (target if target.startswith("/") else "/" + target)
        fields = _headers(headers)
        try:
            for resend in (True, False):
                try:
                    response = await self._session.post(
                        url, data=body, headers=fields, allow_redirects=False, proxy=self._proxy
                    )
                    break
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                    if not resend or isinstance(exc, aiohttp.ClientConnectorError):
                        raise
                    # The connection closed before any byte of the answer: a kept-alive one the server had just
                    # closed, most likely. Once more, on a new connection.
            try:
                content = bytearray()
                while len(content) < self._max_body:
                    chunk = await response.content.read(self._max_body - len(content))
                    if not chunk:
                        break
                    content += chunk
                status, answer_headers = response.status, {k.lower(): v for k, v in response.headers.items()}
                if not response.content.at_eof():
                    response.close()  # the rest is not read: the connection is closed, not drained
                return Answer(status, answer_headers, bytes(content))
            finally:
                response.release()
        except aiohttp.ClientHttpProxyError as exc:
            raise ProxyFailed(f"the proxy {self._proxy_at} answered {exc.status} to CONNECT") from None
        except aiohttp.ClientProxyConnectionError as exc:
            raise ProxyFailed(f"cannot connect to the proxy {self._proxy_at}: {_reason(exc.os_error)}") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TlsFailed(f"TLS with {self.host}:{self.port}: {_reason(exc.certificate_error)}") from None
        except aiohttp.ClientSSLError as exc:
            raise TlsFailed(f"TLS with {self.host}:{self.port}: {_reason(exc.os_error)}") from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {_reason(exc.os_error)}") from None
        except aiohttp.ServerDisconnectedError:
            raise ProtocolFailed("the connection closed before an answer") from None
        except aiohttp.ClientPayloadError:
            raise ProtocolFailed("the connection closed or failed before the answer was complete") from None
        except aiohttp.ClientResponseError as exc:  # not HTTP/1.x; its message is the parser's, without the URL
            raise ProtocolFailed(f"the answer is not valid HTTP/1.x: {exc.message}"[:200]) from None
        except aiohttp.ClientOSError as exc:
            raise ProtocolFailed(f"the connection failed: {_reason(exc)}") from None
        except aiohttp.ClientError as exc:
            raise ProtocolFailed(exc.__class__.__name__) from None
        except (ssl.SSLError, OSError) as exc:  # a TLS failure after the handshake, a socket error
            raise ProtocolFailed(f"the connection failed: {_reason(exc)}") from None

    async def close(self) -> None:
        await self._session.close()


def transport(options: TransportOptions) -> Client:
    """The default `TransportFactory`."""
    return Client(options)


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers less those that frame the request, with control characters in values made spaces."""
    return {
        name: _NOT_IN_VALUE.sub(" ", value).strip(" \t")
        for name, value in headers.items()
        if name.lower() not in _SKIPPED
    }


def _host_and_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 80}"  # never the user information


def _reason(error: BaseException | None) -> str:
    """An OS or TLS error in a few words: its class and its text (a certificate's verify message if it has one)."""
    if error is None:
        return "unknown error"
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"{error.__class__.__name__}: {error.verify_message}"
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return f"{error.__class__.__name__}: {' '.join(text.split())}"[:200]
