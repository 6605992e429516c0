"""Config-file services and channels name their tenant; mistakes name the file, line and field."""

from __future__ import annotations

import pytest

from selfheal.configfile import parse_config
from selfheal.errors import ConfigError

TWO_TENANTS = """\
services:
  - id: shop
    health_url: http://127.0.0.1:6000/health
  - id: shop
    tenant: team-b
    health_url: http://127.0.0.1:6001/health
notifications:
  - name: oncall
    url: http://127.0.0.1:7000/hook
  - name: oncall
    tenant: team-b
    type: slack
    url: http://127.0.0.1:7001/slack
tenants:
  team-b:
    max_services: 10
    requests_per_second: 5
    policies: {dry_run: true, max_attempts: 2}
"""


def test_services_and_channels_belong_to_the_tenant_they_name() -> None:
    config = parse_config(TWO_TENANTS, source="fleet.yaml")
    assert [(s.tenant_id, s.id) for s in config.services] == [
        ("default", "shop"),
        ("team-b", "shop"),
    ]
    assert [(c.tenant_id, c.name) for c in config.notifications] == [
        ("default", "oncall"),
        ("team-b", "oncall"),
    ]
    team_b = config.tenant("team-b")
    assert (team_b.max_services, team_b.requests_per_second) == (10, 5)
    assert team_b.policies.dry_run is True
    assert config.tenant("nobody").max_services is None


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        (("tenant: team-b", "tenant: 'team b!'"), "fleet.yaml:5: services[1].tenant", "pattern"),
        (("    tenant: team-b\n    type", "    tenant: [b]\n    type"), "fleet.yaml:11:", "tenant"),
        (
            ("max_services: 10", "max_services: -1"),
            "fleet.yaml:16: tenants.team-b.max_services",
            "",
        ),
        (("max_attempts: 2", "max_attempts: 99"), "fleet.yaml:18: tenants.team-b.policies", "20"),
        (("requests_per_second: 5", "request_per_second: 5"), "fleet.yaml:17:", "unknown field"),
    ],
)
def test_tenant_mistakes_name_file_line_and_field(
    change: tuple[str, str], where: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(TWO_TENANTS.replace(*change), source="fleet.yaml")
    assert where in refused.value.message
    assert problem in refused.value.message


def test_a_name_twice_in_one_tenant_is_refused() -> None:
    twice = TWO_TENANTS.replace("    tenant: team-b\n    health_url", "    health_url")
    with pytest.raises(ConfigError, match="'shop' appears twice in tenant 'default'"):
        parse_config(twice, source="fleet.yaml")
    twice = TWO_TENANTS.replace("    tenant: team-b\n    type", "    type")
    with pytest.raises(ConfigError, match="channel name 'oncall' appears twice in tenant"):
        parse_config(twice, source="fleet.yaml")
