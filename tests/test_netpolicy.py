"""The network policies as pure values: what each allows, why, and how a uri is read."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from eslhook.netpolicy import (
    DEFAULT_POLICIES, Policies, embedded_ipv4, literal_address, parse_uri, uri_problem)

TENANT, OPERATOR = DEFAULT_POLICIES.tenant, DEFAULT_POLICIES.operator
ip = ipaddress.ip_address


@pytest.mark.parametrize("address, network", [
    ("127.0.0.1", "127.0.0.0/8"), ("10.1.2.3", "10.0.0.0/8"), ("172.31.0.1", "172.16.0.0/12"),
    ("192.168.0.1", "192.168.0.0/16"), ("100.64.0.1", "100.64.0.0/10"),
    ("169.254.169.254", "169.254.0.0/16"), ("224.0.0.251", "224.0.0.0/4"),
    ("0.0.0.0", "0.0.0.0/8"), ("255.255.255.255", "240.0.0.0/4"), ("::1", "::1/128"),
    ("::", "::/128"), ("fd12::1", "fc00::/7"), ("fe80::1", "fe80::/10"), ("ff02::1", "ff00::/8"),
    ("::ffff:8.8.8.8", "::ffff:0:0/96"), ("64:ff9b::808:808", "64:ff9b::/96"),
    ("::808:808", "::/96"), ("2002:808:808::1", "2002::/16"),
])
def test_the_tenant_policy_refuses_internal_and_embedded_addresses(address, network):
    verdict = TENANT.allows(ip(address))
    assert not verdict and verdict.network == network
    assert "account token" in verdict.reason or "no hook may reach" in verdict.reason


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111"])
def test_public_addresses_are_allowed_for_both(address):
    assert TENANT.allows(ip(address)) and OPERATOR.allows(ip(address))


def test_the_operator_policy_refuses_only_its_networks_in_any_ipv6_wrapping():
    assert OPERATOR.allows(ip("127.0.0.1")) and OPERATOR.allows(ip("10.0.0.1"))
    for wrapped in ("169.254.169.254", "::ffff:169.254.169.254", "::a9fe:a9fe",
                    "64:ff9b::a9fe:a9fe", "64:ff9b:1::a9fe:a9fe", "::ffff:0:a9fe:a9fe",
                    "2002:a9fe:a9fe::", "fe80::1", "fe80::1%eth0"):
        verdict = OPERATOR.allows(ip(wrapped))
        assert not verdict and "delivery.blocked_networks" in verdict.reason, wrapped


def test_allowed_networks_open_tenant_ranges_but_never_the_operators():
    policies = Policies.build(tenant_allowed_networks=["10.20.0.0/16", "169.254.0.0/16"])
    assert policies.tenant.allows(ip("10.20.1.1"))
    assert not policies.tenant.allows(ip("10.21.1.1"))
    assert not policies.tenant.allows(ip("169.254.169.254"))        # blocked_networks wins
    # an IPv6 range opened does not open the IPv4 it carries
    nat64 = Policies.build(tenant_allowed_networks=["64:ff9b::/96"]).tenant
    assert nat64.allows(ip("64:ff9b::808:808"))
    refused = nat64.allows(ip("64:ff9b::7f00:1"))
    assert not refused and refused.reason.startswith("carries the IPv4 address 127.0.0.1")


def test_a_zone_id_is_refused_for_tenants_even_where_the_address_is_opened():
    policies = Policies.build(blocked_networks=[], tenant_allowed_networks=["fe80::/10"])
    assert policies.tenant.allows(ip("fe80::1"))
    assert "zone id" in policies.tenant.allows(ip("fe80::1%eth0")).reason
    assert policies.operator.allows(ip("fe80::1%eth0"))


@pytest.mark.parametrize("blocked, allowed, bad", [
    (["10.0.0.0/8", "nonsense"], [], "delivery.blocked_networks[1]"),
    ([], ["10.0.0.0/33"], "delivery.tenant_allowed_networks[0]"),
    ("10.0.0.0/8", [], "delivery.blocked_networks: must be a list"),
])
def test_policies_are_validated_when_built(blocked, allowed, bad):
    with pytest.raises(ValueError, match=bad.replace("[", r"\[").replace("]", r"\]")):
        Policies.build(blocked, allowed)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=2, max_value=2**32 - 1))
def test_every_ipv6_form_of_an_ipv4_address_gets_its_verdict(value):
    v4 = ipaddress.IPv4Address(value)
    forms = [ipaddress.IPv6Address(prefix | value) for prefix in (
        0xFFFF << 32, 0xFFFF0000 << 32, 0, 0x0064FF9B << 96, 0x0064FF9B0001 << 80)]
    forms.append(ipaddress.IPv6Address((0x2002 << 112) | (value << 80)))
    for form in forms:
        assert v4 in embedded_ipv4(form)
        if not OPERATOR.allows(v4):
            assert not OPERATOR.allows(form), form
        assert not TENANT.allows(form), form      # embedded IPv4: never for tenants


@pytest.mark.parametrize("host, address", [
    ("2852039166", "169.254.169.254"), ("0251.0376.0251.0376", "169.254.169.254"),
    ("0xa9fea9fe", "169.254.169.254"), ("0xA9.0xFE.0xA9.0xFE", "169.254.169.254"),
    ("169.254.43518", "169.254.169.254"), ("169.254.169.254.", "169.254.169.254"),
    ("127.1", "127.0.0.1"), ("[::1]", "::1"), ("fe80::1%25eth0", "fe80::1%eth0"),
    ("example.com", None), ("deadbeef", None), ("1e100", None), ("cafe.", None),
])
def test_literal_addresses_are_read_as_a_resolver_reads_them(host, address):
    assert literal_address(host) == (None if address is None else ip(address))


@pytest.mark.parametrize("uri, problem", [
    ("http://a\x00b/", "must not contain NUL (at character 9)"),
    ("http://x/a\r\nHost: y", "must not contain CR (at character 11)"),
    ("http://x\n/", "must not contain LF (at character 9)"),
    ("http://x:99999/", "port must be 1..65535 (got 99999)"),
    ("http://x:0/", "port must be 1..65535 (got 0)"),
    ("http://x:/", "port must be a number 1..65535 (got '')"),
    ("http://x:8o/", "port must be a number 1..65535 (got '8o')"),
    ("http:///x", "must name a host"), ("http://:80/x", "must name a host"),
    ("http://[v1.x]/", "a bracketed host must be an IPv6 address (got [v1.x])"),
    ("http://[::1/", "is not a valid URL: Invalid IPv6 URL"),
    ("http://:p@x/", "the userinfo (user:password@) must name a user"),
    ("ftp://x/", "must be http:// or https://"),
    ("http://ex%41mple.com/", "host 'ex%41mple.com': only letters, digits, '-', '_' and '.' "
                              "(IDNA-encode an international name)"),
])
def test_unsendable_uris_are_named(uri, problem):
    assert uri_problem(uri) == problem


def test_a_good_uri_is_read_into_its_parts():
    parts = parse_uri("HTTPS://Crm.Example.COM:8443/calls?x=1#frag")
    assert (parts.scheme, parts.host, parts.port, parts.explicit_port, parts.path) == (
        "https", "crm.example.com", 8443, True, "/calls?x=1")
    assert parse_uri("http://[::1]/").port == 80
