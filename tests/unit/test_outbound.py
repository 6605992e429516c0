"""The outbound policy as a table: every spelling of a metadata or link-local address is
refused for every tenant; loopback and private ranges are the default tenant's only,
unless the operator allows them for another tenant; public addresses are allowed."""

from __future__ import annotations

import socket

import pytest

from selfheal.config import load_settings
from selfheal.configfile import parse_config
from selfheal.errors import ConfigError
from selfheal.outbound import OutboundPolicies
from selfheal.types import DEFAULT_TENANT

# every way of writing an address a tenant's URL must never reach
METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254:80/computeMetadata/v1/",
    "http://0xa9fea9fe/",  # hex
    "http://0xA9.0xFE.0xA9.0xFE/",  # hex per byte
    "http://2852039166/",  # decimal
    "http://0251.0376.0251.0376/",  # octal
    "http://169.254.43518/",  # short form
    "http://169.254.169.254./",  # trailing dot
    # fullwidth digits
    "http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/",
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped, hex
    "http://[::a9fe:a9fe]/",  # IPv4-compatible IPv6
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64
    "http://[2002:a9fe:a9fe::1]/",  # 6to4
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS IPv6 metadata
    "http://[fe80::1]/",  # IPv6 link-local
    "http://[fe80::a9fe:a9fe%25eth0]/",  # link-local with a zone
    "http://169.254.0.1:8080/",  # anything link-local
    "http://100.100.100.200/",  # Alibaba metadata
    "http://168.63.129.16/",  # Azure host
    "http://user:pw@169.254.169.254/",  # credentials in front
]
LOCAL_URLS = [
    "http://127.0.0.1:8080/health",
    "http://127.1:8080/health",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://[::1]/health",
    "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0:8080/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://[fd12:3456::1]/",
    "http://100.64.0.1/",
]
PUBLIC_URLS = ["http://93.184.215.14/", "http://[2606:4700::1111]/", "http://example.com/"]


@pytest.fixture
def policies() -> OutboundPolicies:
    return OutboundPolicies(tenant_allow={"team-c": ["10.0.0.0/8", "127.0.0.0/8"]})


@pytest.mark.parametrize("url", METADATA_URLS)
@pytest.mark.parametrize("tenant", [DEFAULT_TENANT, "team-b", "team-c"])
def test_metadata_and_link_local_refused_for_everyone(
    policies: OutboundPolicies, tenant: str, url: str
) -> None:
    reason = policies.url_refusal(tenant, url)
    assert reason is not None
    assert "link-local, cloud metadata" in reason


@pytest.mark.parametrize("url", LOCAL_URLS)
def test_local_addresses_are_the_default_tenants_only(policies: OutboundPolicies, url: str) -> None:
    assert policies.url_refusal(DEFAULT_TENANT, url) is None
    reason = policies.url_refusal("team-b", url)
    assert reason is not None
    assert "loopback or private address this tenant may not reach" in reason
    assert "outbound_allow" in reason


def test_a_tenant_reaches_the_networks_its_config_allows(policies: OutboundPolicies) -> None:
    assert policies.url_refusal("team-c", "http://10.9.9.9/") is None
    assert policies.url_refusal("team-c", "http://127.0.0.1:9/") is None
    assert policies.url_refusal("team-c", "http://192.168.1.1/") is not None
    # an allowance never opens the metadata service
    assert policies.url_refusal("team-c", "http://169.254.169.254/") is not None


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_public_addresses_and_names_pass_registration(policies: OutboundPolicies, url: str) -> None:
    assert policies.url_refusal("team-b", url) is None


def test_settings_deny_and_allow_lists() -> None:
    policies = OutboundPolicies(deny=["93.184.0.0/16"], allow=["169.254.10.0/24", "10.5.0.0/16"])
    assert policies.url_refusal(DEFAULT_TENANT, "http://93.184.215.14/") is not None
    # OUTBOUND_ALLOW beats the built-in deny list, and opens a private range to all
    assert policies.url_refusal("team-b", "http://169.254.10.7/") is None
    assert policies.url_refusal("team-b", "http://169.254.169.254/") is not None
    assert policies.url_refusal("team-b", "http://10.5.1.1/") is None
    with pytest.raises(ValueError, match="not a network"):
        OutboundPolicies(deny=["10.0.0.0/33"])


def test_the_socket_factory_refuses_before_a_socket_exists(policies: OutboundPolicies) -> None:
    factory = policies.policy("team-b").socket_factory
    for host, family in (("169.254.169.254", socket.AF_INET), ("::1", socket.AF_INET6)):
        with pytest.raises(PermissionError, match="refused by the outbound policy"):
            factory((family, socket.SOCK_STREAM, 6, "", (host, 80)))
    sock = factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80)))
    sock.close()


def test_tenants_with_the_same_rules_share_one_policy(policies: OutboundPolicies) -> None:
    assert policies.policy("team-b") is policies.policy("team-x")
    assert policies.policy("team-b") is not policies.policy(DEFAULT_TENANT)
    assert policies.policy("team-c") is not policies.policy("team-b")


def test_bad_networks_are_clear_errors() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config("tenants:\n  team-a:\n    outbound_allow: [10.0.0.0/33]\n")
    assert "<config>:3: tenants.team-a.outbound_allow" in raised.value.message
    assert "'10.0.0.0/33' is not a network" in raised.value.message
    with pytest.raises(ConfigError, match="OUTBOUND_DENY: 'metadata' is not a network"):
        load_settings(_env_file=None, OUTBOUND_DENY="169.254.0.0/16,metadata")
    settings = load_settings(_env_file=None, OUTBOUND_ALLOW="10.1.2.3, fd00::/8")
    assert settings.OUTBOUND_ALLOW == ["10.1.2.3/32", "fd00::/8"]
