"""Finding plugins: entry points of three groups, loaded once at start.

Built-in executors, checks and channels are declared in selfheal's own
``pyproject.toml`` under the same groups as third-party ones, so the core keeps
no list of them. A name registered twice, a plugin that fails to import, or one
written for another ``API_VERSION`` is a start-up error that names the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from selfheal.configfile import FileConfig
from selfheal.errors import PluginError
from selfheal.plugin_api import API_VERSION, PluginContext, PluginFactory

__all__ = ["GROUPS", "PluginError", "Plugins", "build", "load_plugins", "validate_config"]

GROUPS = {
    "executors": "selfheal.executors",
    "checks": "selfheal.checks",
    "channels": "selfheal.channels",
}


@dataclass(frozen=True)
class Plugins:
    """Every loaded factory, by kind and name."""

    executors: dict[str, PluginFactory] = field(default_factory=dict)
    checks: dict[str, PluginFactory] = field(default_factory=dict)
    channels: dict[str, PluginFactory] = field(default_factory=dict)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> package

    def missing(self, kind: str, name: str) -> PluginError:
        """The error for a config that names a plugin nobody installed."""
        known = ", ".join(sorted(getattr(self, kind))) or "none"
        return PluginError(
            f"no {kind[:-1]} plugin named {name!r} is installed (installed: {known})"
        )


def load_plugins(found: Iterable[tuple[str, EntryPoint]] | None = None) -> Plugins:
    """Import every plugin of the three groups (``found`` replaces discovery in tests)."""
    plugins = Plugins()
    pairs = found if found is not None else _discover()
    seen: set[tuple[str, str, str]] = set()
    for kind, point in pairs:
        package = _package(point)
        if (kind, point.name, point.value) in seen:
            continue  # one distribution visible twice on sys.path: the same plugin
        seen.add((kind, point.name, point.value))
        registry: dict[str, PluginFactory] = getattr(plugins, kind)
        if point.name in registry:
            raise PluginError(
                f"{GROUPS[kind]} name {point.name!r} is registered twice: by "
                f"{plugins.origin[(kind, point.name)]} and by {package}; uninstall one of them"
            )
        factory = _import(kind, point, package)
        registry[point.name] = factory
        plugins.origin[(kind, point.name)] = package
    return plugins


def _discover() -> list[tuple[str, EntryPoint]]:
    return [(kind, point) for kind, group in GROUPS.items() for point in entry_points(group=group)]


def _package(point: EntryPoint) -> str:
    dist = point.dist
    if dist is None:
        return f"module {point.module}"
    return f"package {dist.name} {dist.version}"


def _import(kind: str, point: EntryPoint, package: str) -> PluginFactory:
    try:
        factory: Any = point.load()
    except Exception as exc:
        raise PluginError(
            f"plugin {point.name!r} ({GROUPS[kind]}) from {package} failed to import: "
            f"{type(exc).__name__}: {exc} (reinstall or uninstall {package.split()[1]})"
        ) from None
    version = getattr(factory, "api_version", None)
    if version != API_VERSION:
        raise PluginError(
            f"plugin {point.name!r} ({GROUPS[kind]}) from {package} is written for plugin API "
            f"version {version!r}; this selfheal speaks version {API_VERSION}"
        )
    if not callable(factory) or not hasattr(factory, "options_model"):
        raise PluginError(
            f"plugin {point.name!r} ({GROUPS[kind]}) from {package} is not a plugin factory: "
            "it needs api_version, options_model and to be callable (see docs/plugins.md)"
        )
    return factory  # type: ignore[no-any-return]


def validate_config(config: FileConfig, plugins: Plugins) -> None:
    """Every plugin the config names is installed, and its options are valid.

    Run at start, so a typo in an option fails with the file, the line and the
    field instead of failing the first time a probe or an action needs it.
    """
    for i, svc in enumerate(config.services):
        if svc.check is not None:
            where: tuple[str | int, ...] = ("services", i, "check")
            factory = _named(config, plugins, "checks", svc.check["type"], (*where, "type"))
            options = {k: v for k, v in svc.check.items() if k != "type"}
            _options(config, factory, options, where)
        for action, spec in svc.remediation.items():
            where = ("services", i, "remediation", action)
            if spec.plugin is None:
                continue
            factory = _named(config, plugins, "executors", spec.plugin, (*where, "executor"))
            _options(config, factory, spec.options, (*where, "options"))
    for i, channel in enumerate(config.notifications):
        where = ("notifications", i)
        factory = _named(config, plugins, "channels", channel.type, (*where, "type"))
        if not getattr(factory, "builtin", False):
            _options(config, factory, channel.options, (*where, "options"))


def _named(
    config: FileConfig, plugins: Plugins, kind: str, name: str, where: tuple[str | int, ...]
) -> PluginFactory:
    factory = getattr(plugins, kind).get(name)
    if factory is None:
        raise config.error_at(where, plugins.missing(kind, name).message)
    return factory  # type: ignore[no-any-return]


def _options(
    config: FileConfig, factory: PluginFactory, data: dict[str, Any], where: tuple[str | int, ...]
) -> None:
    model = factory.options_model
    if model is None:
        if data:
            raise config.error_at(where, "this plugin takes no options")
        return
    config.validate_at(where, model, data)


def build(
    factories: dict[str, PluginFactory], context: PluginContext, builtin: PluginContext
) -> dict[str, Any]:
    """One object per factory: built-ins get ``builtin``, everyone else ``context``."""
    return {
        name: factory(builtin if getattr(factory, "builtin", False) else context)
        for name, factory in factories.items()
    }
