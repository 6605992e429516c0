"""Plugin discovery: built-ins through the entry-point groups, duplicates, broken plugins,
and config options validated by the plugin's own model with file, line and field."""

from __future__ import annotations

from importlib.metadata import EntryPoint, PathDistribution
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from selfheal import plugin_api
from selfheal.configfile import parse_config
from selfheal.errors import ConfigError
from selfheal.plugins import PluginError, Plugins, load_plugins, validate_config
from selfheal.services import ServiceSpec


class _Options(BaseModel):
    url: str
    retries: int = 1


class GoodExecutor:
    api_version: ClassVar[int] = plugin_api.API_VERSION
    options_model: ClassVar[type[BaseModel]] = _Options

    def __init__(self, context: plugin_api.PluginContext) -> None:
        self.context = context

    async def execute(self, request: plugin_api.ActionRequest) -> plugin_api.ActionResult:
        return plugin_api.ActionResult(True, "done")


class OldExecutor(GoodExecutor):
    api_version: ClassVar[int] = 0


def _dist(tmp_path: Path, name: str, points: dict[str, str]) -> list[tuple[str, EntryPoint]]:
    """A real installed-distribution record (dist-info) declaring some executors."""
    info = tmp_path / f"{name}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
    lines = "".join(f"{k} = {v}\n" for k, v in points.items())
    (info / "entry_points.txt").write_text(f"[selfheal.executors]\n{lines}")
    return [("executors", point) for point in PathDistribution(info).entry_points]


def test_built_ins_load_through_the_entry_point_groups() -> None:
    plugins = load_plugins()
    assert {"webhook", "exec", "notify"} <= set(plugins.executors)
    assert {"tcp", "exec", "tls"} <= set(plugins.checks)
    assert {"webhook", "slack", "teams", "pagerduty", "email"} <= set(plugins.channels)
    assert "package selfheal" in plugins.origin[("executors", "webhook")]


def test_a_name_registered_twice_is_an_error(tmp_path: Path) -> None:
    first = _dist(tmp_path, "one-plugin", {"restart": f"{__name__}:GoodExecutor"})
    (tmp_path / "b").mkdir()
    second = _dist(tmp_path / "b", "other-plugin", {"restart": f"{__name__}:OldExecutor"})
    with pytest.raises(PluginError) as caught:
        load_plugins(first + second)
    assert "'restart' is registered twice" in caught.value.message
    assert "one-plugin 1.2" in caught.value.message
    assert "other-plugin 1.2" in caught.value.message


def test_a_plugin_that_fails_to_import_names_its_package(tmp_path: Path) -> None:
    found = _dist(tmp_path, "broken-plugin", {"fix": "no_such_module_xyz:Executor"})
    with pytest.raises(PluginError) as caught:
        load_plugins(found)
    message = caught.value.message
    assert "broken-plugin 1.2" in message
    assert "failed to import" in message
    assert "no_such_module_xyz" in message


def test_a_plugin_for_another_api_version_is_refused(tmp_path: Path) -> None:
    found = _dist(tmp_path, "old-plugin", {"fix": f"{__name__}:OldExecutor"})
    with pytest.raises(PluginError, match="plugin API version 0"):
        load_plugins(found)


def _plugins(tmp_path: Path) -> Plugins:
    return load_plugins(_dist(tmp_path, "good-plugin", {"good": f"{__name__}:GoodExecutor"}))


CONFIG = """\
services:
  - id: legacy
    health_url: http://127.0.0.1:9/health
    remediation:
      restart:
        executor: good
        options:
          url: http://127.0.0.1:9/restart
          retries: many
"""


def test_plugin_options_are_validated_by_its_model_with_file_line_and_field(
    tmp_path: Path,
) -> None:
    config = parse_config(CONFIG, source="fleet.yaml")
    with pytest.raises(ConfigError) as caught:
        validate_config(config, _plugins(tmp_path))
    message = caught.value.message
    assert "fleet.yaml:9: services[0].remediation.restart.options.retries" in message
    assert "integer" in message


def test_an_unknown_plugin_name_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    config = parse_config(CONFIG.replace("executor: good", "executor: gone"), source="f.yaml")
    with pytest.raises(ConfigError) as caught:
        validate_config(config, _plugins(tmp_path))
    assert "f.yaml:6: services[0].remediation.restart.executor" in caught.value.message
    assert "no executor plugin named 'gone'" in caught.value.message


def test_check_options_errors_name_the_line() -> None:
    text = """\
services:
  - id: db
    check:
      type: tcp
      address: nowhere
"""
    config = parse_config(text, source="db.yaml")
    with pytest.raises(ConfigError) as caught:
        validate_config(config, load_plugins())
    assert "db.yaml:5: services[0].check.address" in caught.value.message


def test_a_service_needs_a_health_url_or_a_check() -> None:
    with pytest.raises(ConfigError, match="a health_url or a check"):
        parse_config("services:\n  - id: x\n")


def test_notify_goes_to_the_channels_not_the_service_webhook(make_settings: Any) -> None:
    from selfheal.services import build_spec
    from selfheal.types import ServiceKey

    spec: ServiceSpec = build_spec(
        make_settings("sqlite+aiosqlite://"),
        key=ServiceKey("default", "api"),
        name=None,
        health_url="http://127.0.0.1:9/health",
        webhook_url="http://127.0.0.1:9/webhook",
        secret="s3cret-s3cret-s3cret",
    )
    assert spec.can_run("notify") == "notify"
    assert spec.can_run("restart") == "webhook"
