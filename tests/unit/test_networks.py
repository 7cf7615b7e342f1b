"""Networks as `/meta` lists them: parsed strictly and within bounds whatever the input, and looked up exactly as
`ipaddress` would answer (an IPv4-mapped IPv6 address counting as its IPv4 address)."""

from __future__ import annotations

import ipaddress
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghingest.core.networks import (
    MAX_META_BYTES,
    MAX_NETWORKS,
    InvalidNetworks,
    NetworkSet,
    parse_meta_hooks,
    parse_network,
    parse_networks,
)

# What api.github.com/meta answered for `hooks` (2024): the form every entry takes.
GITHUB_HOOKS = ["192.30.252.0/22", "185.199.108.0/22", "140.82.112.0/20", "143.55.64.0/20", "2a0a:a440::/29"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def v4_networks() -> st.SearchStrategy[Network]:
    return st.builds(
        lambda value, prefix: ipaddress.IPv4Network((value, prefix), strict=False),
        st.integers(0, 2**32 - 1),
        st.integers(0, 32),
    )


def v6_networks() -> st.SearchStrategy[Network]:
    mapped = st.builds(  # inside ::ffff:0:0/96, where IPv4-mapped addresses live
        lambda value, prefix: ipaddress.IPv6Network(((0xFFFF << 32) | value, prefix), strict=False),
        st.integers(0, 2**32 - 1),
        st.integers(96, 128),
    )
    anywhere = st.builds(
        lambda value, prefix: ipaddress.IPv6Network((value, prefix), strict=False),
        st.integers(0, 2**128 - 1),
        st.integers(0, 128),
    )
    return mapped | anywhere


networks = st.lists(v4_networks() | v6_networks(), max_size=30)
v4_addresses = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
addresses = v4_addresses | st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


def expected(nets: list[Network], address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The slow, obvious answer: `ipaddress`'s own membership, for the address and for its mapped form."""
    forms: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        forms.append(address.ipv4_mapped)
    if isinstance(address, ipaddress.IPv4Address):
        forms.append(ipaddress.IPv6Address(f"::ffff:{address}"))
    return any(form in net for form in forms for net in nets if form.version == net.version)


@settings(max_examples=300)
@given(networks, addresses)
def test_membership_is_ipaddress_membership(nets: list[Network], address: ipaddress.IPv4Address) -> None:
    found = NetworkSet(nets)
    assert found.contains(address) == expected(nets, address)
    assert found.contains(str(address)) == expected(nets, address)


@settings(max_examples=200)
@given(networks, v4_addresses)
def test_an_ipv4_mapped_address_is_its_ipv4_address(nets: list[Network], address: ipaddress.IPv4Address) -> None:
    found = NetworkSet(nets)
    assert found.contains(f"::ffff:{address}") == found.contains(str(address))


@given(networks)
def test_the_texts_parse_back_to_the_same_set(nets: list[Network]) -> None:
    found = NetworkSet(nets)
    assert parse_networks(found.texts()) == found
    assert len(found) == len(set(nets))


@given(networks, networks, addresses)
def test_a_union_holds_what_either_holds(
    left: list[Network], right: list[Network], address: ipaddress.IPv4Address
) -> None:
    union = NetworkSet(left) | NetworkSet(right)
    assert union.contains(address) == (NetworkSet(left).contains(address) or NetworkSet(right).contains(address))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values)
def test_any_json_value_parses_or_raises_invalid_networks(value: object) -> None:
    try:
        parsed = parse_networks(value)
    except InvalidNetworks:
        return  # and nothing else escapes
    assert all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in parsed)


@settings(max_examples=300)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps({"hooks": v}).encode()))
def test_any_meta_body_parses_or_raises_invalid_networks(body: bytes) -> None:
    try:
        hooks = parse_meta_hooks(body)
    except InvalidNetworks:
        return
    assert len(hooks) > 0


def test_github_s_hooks_parse() -> None:
    hooks = parse_meta_hooks(orjson.dumps({"verifiable_password_authentication": True, "hooks": GITHUB_HOOKS}))
    assert hooks.texts() == sorted(GITHUB_HOOKS, key=lambda t: (":" in t, int(ipaddress.ip_network(t)[0])))
    assert hooks.contains("192.30.252.1")
    assert hooks.contains("::ffff:140.82.121.3")
    assert hooks.contains("2a0a:a440::1")
    assert not hooks.contains("127.0.0.1")
    assert not hooks.contains("unknown")
    assert not hooks.contains(None)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("192.30.252.1/22", "host bits set"),
        ("192.30.252.0/33", "not an IPv4 or IPv6 network"),
        ("192.30.252.0/022", "not an IPv4 or IPv6 network"),  # leading zeros
        ("192.30.252.0/+22", "not an IPv4 or IPv6 network"),
        ("192.30.252.0/255.255.252.0", "not an IPv4 or IPv6 network"),  # a netmask, which ipaddress would take
        ("fe80::1%eth0", "not an IPv4 or IPv6 network"),  # a scope id, which ipaddress would take
        ("192.030.252.0/22", "not an IPv4 or IPv6 network"),
        (" 192.30.252.0/22", "not an IPv4 or IPv6 network"),
        ("１９２.30.252.0/22", "not an IPv4 or IPv6 network"),  # fullwidth digits
        ("github.com", "not an IPv4 or IPv6 network"),
        ("", "not an IPv4 or IPv6 network"),
        ("1" * 100, "not an IPv4 or IPv6 network"),
        (3232235520, "a number, not a network"),  # ipaddress would read an integer as an address
        (None, "null, not a network"),
        (["10.0.0.0/8"], "a list, not a network"),
    ],
)
def test_an_entry_that_is_not_a_network_is_named(entry: object, reason: str) -> None:
    with pytest.raises(InvalidNetworks, match=reason) as raised:
        parse_networks(["10.0.0.0/8", entry], where="hooks")
    assert raised.value.index == 1
    assert raised.value.summary.startswith("hooks entry 2: ")
    if isinstance(entry, str) and entry:
        assert repr(entry[:64]) in str(raised.value)  # the message quotes it, for an operator's own setting
        assert entry not in raised.value.summary  # the summary never does, for text from outside


def test_a_single_address_is_its_own_network() -> None:
    assert parse_network("192.30.252.7") == ipaddress.ip_network("192.30.252.7/32")
    assert parse_network("2a0a:a440::7") == ipaddress.ip_network("2a0a:a440::7/128")


@pytest.mark.parametrize("value", ["192.30.252.0/22", {"hooks": []}, 1, None])
def test_a_list_is_required(value: object) -> None:
    with pytest.raises(InvalidNetworks, match="not a list of networks"):
        parse_networks(value)


def test_the_list_is_bounded() -> None:
    parse_networks(["10.0.0.0/8"] * MAX_NETWORKS)
    with pytest.raises(InvalidNetworks, match=f"more than the {MAX_NETWORKS} accepted"):
        parse_networks(["10.0.0.0/8"] * (MAX_NETWORKS + 1))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>rate limited</html>", "not JSON"),
        (b'["192.30.252.0/22"]', "a list, not a JSON object"),
        (b'{"verifiable_password_authentication": true}', "no `hooks` networks"),  # GitHub Enterprise Server
        (b'{"hooks": []}', "is empty"),
        (b'{"hooks": "192.30.252.0/22"}', "a string, not a list"),
        (b'{"hooks": ["192.30.252.0/22", 7]}', "entry 2: a number"),
        (b'{"hooks": [' + b'"10.0.0.0/8",' * MAX_NETWORKS + b'"10.0.0.0/8"]}', "more than"),
        (b'{"hooks": ' + b"[" * 2000 + b"]" * 2000 + b"}", "not JSON"),  # nested past orjson's limit
        (b" " * (MAX_META_BYTES + 1), "larger than"),
    ],
)
def test_a_meta_body_that_is_not_a_hooks_list_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidNetworks, match=reason):
        parse_meta_hooks(body)


def test_a_set_is_equal_by_its_networks_and_lists_each_once() -> None:
    one = parse_networks(["10.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"])
    assert one == parse_networks(["2001:db8::/32", "10.0.0.0/8"])
    assert len(one) == 2
    assert "10.1.2.3" in one
    assert 167837955 not in one  # an integer is not an address here
