"""Sets of IP networks, as GitHub's `/meta` lists the ones its webhooks come from (`"hooks": ["192.30.252.0/22",
"2a0a:a440::/29", …]`), and the membership test the webhook route makes for each request. This code performs no
I/O of its own.

`parse_networks` takes whatever a JSON document or a setting holds and returns a `NetworkSet` or raises
`InvalidNetworks`, nothing else, whatever it is given: a string or an object where a list should be, numbers, nested
lists, a million entries (`MAX_NETWORKS` bounds the list, `MAX_ENTRY_CHARS` each entry). An entry is IPv4 or IPv6
CIDR notation (`address/prefix`, no host bits set) or one address alone; not a netmask (`/255.255.255.0`), a scope
id (`%eth0`), a prefix with a sign or leading zeros, or a number. `parse_meta_hooks` reads a whole `/meta` body.

Membership (`networks.contains(host)`) is a binary search over the merged ranges of each family, after one parse of
the address. An IPv4-mapped IPv6 address (`::ffff:192.30.252.1`, what a dual-stack socket reports for an IPv4 peer)
is its IPv4 address; a listed IPv6 network that covers mapped addresses covers those IPv4 addresses too.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterable, Iterator

import orjson

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_NETWORKS = 4096  # GitHub lists about ten for `hooks`; a list this long was not written for webhooks
MAX_ENTRY_CHARS = 64  # the longest IPv6 CIDR ("ffff:…:ffff:255.255.255.255/128") has 49
MAX_META_BYTES = 4 * 1024 * 1024  # github.com's whole `/meta` (every service's ranges) is a few hundred KiB

_CIDR = re.compile(r"[0-9A-Fa-f:.]{2,49}(?:/(?:0|[1-9][0-9]{0,2}))?")  # checked before `ipaddress` sees it
_MAPPED = int(ipaddress.IPv6Address("::ffff:0.0.0.0"))  # ::ffff:0:0/96, the IPv4-mapped addresses
_MAPPED_LAST = _MAPPED + 2**32 - 1


class InvalidNetworks(ValueError):
    """A list of networks that is not one, or an entry of it that is not a network.

    `str()` quotes the bad entry (shortened, escaped), for a setting the operator wrote; `summary` says the same
    without quoting anything, for text that came from outside (a `/meta` answer is logged by it).
    """

    def __init__(
        self, reason: str, *, index: int | None = None, entry: str | None = None, where: str = "", hint: str = ""
    ) -> None:
        self.reason = reason
        self.index = index
        place = " ".join(part for part in (where, "" if index is None else f"entry {index + 1}") if part)
        self.summary = f"{place}: {reason}" if place else reason
        quoted = "" if entry is None else f" {entry[:MAX_ENTRY_CHARS]!r}"
        message = f"{place}{quoted}: {reason}" if place or quoted else reason
        super().__init__(f"{message} ({hint})" if hint else message)


def _kind(value: object) -> str:
    """What a JSON value is, in words (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_network(entry: object, *, index: int | None = None, where: str = "") -> Network:
    """One network in CIDR notation (or one address alone: the network of that address)."""
    if not isinstance(entry, str):
        raise InvalidNetworks(f"{_kind(entry)}, not a network in CIDR notation", index=index, where=where)
    if len(entry) > MAX_ENTRY_CHARS or not entry.isascii() or not _CIDR.fullmatch(entry):
        raise InvalidNetworks("not an IPv4 or IPv6 network in CIDR notation", index=index, entry=entry, where=where)
    try:
        network = ipaddress.ip_network(entry, strict=False)
        first = ipaddress.ip_address(entry.partition("/")[0])
    except ValueError:
        raise InvalidNetworks(
            "not an IPv4 or IPv6 network in CIDR notation", index=index, entry=entry, where=where
        ) from None
    if first != network.network_address:
        raise InvalidNetworks("host bits set", index=index, entry=entry, where=where, hint=f"the network is {network}")
    return network


def parse_networks(entries: object, *, limit: int = MAX_NETWORKS, where: str = "") -> NetworkSet:
    """A list (or tuple) of networks, at most `limit` of them; `where` names the list in errors (`hooks`)."""
    if not isinstance(entries, list | tuple):
        raise InvalidNetworks(f"{_kind(entries)}, not a list of networks", where=where)
    if len(entries) > limit:
        raise InvalidNetworks(f"{len(entries)} networks, more than the {limit} accepted", where=where)
    return NetworkSet(parse_network(entry, index=i, where=where) for i, entry in enumerate(entries))


def parse_meta_hooks(body: bytes) -> NetworkSet:
    """The `hooks` networks of a `GET /meta` answer's body: a JSON object whose `hooks` is a non-empty list of
    networks (an empty one would refuse every delivery: it is taken for a broken answer, not a decision)."""
    if len(body) > MAX_META_BYTES:
        raise InvalidNetworks(f"the body is larger than {MAX_META_BYTES} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidNetworks("the body is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidNetworks(f"the body is {_kind(document)}, not a JSON object")
    if "hooks" not in document:
        raise InvalidNetworks("the document lists no `hooks` networks")
    hooks = parse_networks(document["hooks"], where="hooks")
    if not hooks:
        raise InvalidNetworks("the `hooks` list is empty")
    return hooks


def _address(host: str | Address) -> Address | None:
    if isinstance(host, str):
        try:
            host = ipaddress.ip_address(host)
        except ValueError:
            return None
    if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
        return host.ipv4_mapped
    return host


def _merged(ranges: list[tuple[int, int]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Sorted, non-overlapping, non-adjacent ranges: their first addresses and their last ones."""
    starts: list[int] = []
    ends: list[int] = []
    for start, end in sorted(ranges):
        if ends and start <= ends[-1] + 1:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return tuple(starts), tuple(ends)


def _within(ranges: tuple[tuple[int, ...], tuple[int, ...]], value: int) -> bool:
    starts, ends = ranges
    i = bisect.bisect_right(starts, value) - 1
    return i >= 0 and value <= ends[i]


class NetworkSet:
    """An immutable set of networks (each listed once, in order), with a fast membership test."""

    __slots__ = ("_v4", "_v6", "networks")

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            sorted(set(networks), key=lambda n: (n.version, int(n.network_address), n.prefixlen))
        )
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for network in self.networks:
            first, last = int(network.network_address), int(network.broadcast_address)
            if network.version == 4:
                v4.append((first, last))
                continue
            v6.append((first, last))
            low, high = max(first, _MAPPED), min(last, _MAPPED_LAST)
            if low <= high:  # the part of an IPv6 network that is IPv4-mapped addresses
                v4.append((low - _MAPPED, high - _MAPPED))
        self._v4 = _merged(v4)
        self._v6 = _merged(v6)

    def contains(self, host: str | Address | None) -> bool:
        """Whether `host` (an address, as text or parsed) lies in one of the networks; False for anything that is
        not an address (`unknown`, a name, None)."""
        address = None if host is None else _address(host)
        if address is None:
            return False
        return _within(self._v4 if address.version == 4 else self._v6, int(address))

    def __contains__(self, host: object) -> bool:
        return isinstance(host, str | ipaddress.IPv4Address | ipaddress.IPv6Address) and self.contains(host)

    def __or__(self, other: NetworkSet) -> NetworkSet:
        return NetworkSet((*self.networks, *other.networks))

    def __len__(self) -> int:
        return len(self.networks)

    def __iter__(self) -> Iterator[Network]:
        return iter(self.networks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NetworkSet) and self.networks == other.networks

    def __hash__(self) -> int:
        return hash(self.networks)

    def __repr__(self) -> str:
        return f"NetworkSet({[str(n) for n in self.networks]!r})"

    def texts(self) -> list[str]:
        """The networks in CIDR notation (what `parse_networks` reads back)."""
        return [str(n) for n in self.networks]


EMPTY = NetworkSet()
