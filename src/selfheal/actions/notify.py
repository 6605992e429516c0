"""Telling people: deliver a notice to the configured channels; never raise.

The heal loop escalates through a ``Notifier`` once per incident group; the
``notify`` action lets a catalog tell people as one of its steps and carry on.
"""

from __future__ import annotations

from typing import Any

import httpx

from selfheal import plugin_api
from selfheal.actions.base import ActionRequest, ActionResult, BuiltinContext
from selfheal.actions.channels import Channel, Notice
from selfheal.configfile import NotificationConfig
from selfheal.logging import get_logger
from selfheal.plugins import Plugins, load_plugins
from selfheal.types import Severity

log = get_logger(__name__)


class Notifier:
    """Every configured channel, and delivery that reports instead of raising."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        configs: list[NotificationConfig],
        plugins: Plugins | None = None,
    ) -> None:
        plugins = plugins or load_plugins()
        self._channels: list[Channel] = [
            _build_channel(client, config, plugins, self.notify_plugin) for config in configs
        ]

    async def notify_plugin(self, notice: plugin_api.Notice) -> list[str]:
        """``PluginContext.notify``: a plugin's notice to every channel that wants it."""
        return await self.send(
            Notice(
                kind=notice.kind,
                tenant_id="default",
                group_id=0,
                title=notice.title,
                severity=Severity(notice.severity),
                reason=notice.reason,
                services=list(notice.services),
                link=notice.link,
            )
        )

    @property
    def channels(self) -> list[str]:
        """Names of the configured channels."""
        return [c.config.name for c in self._channels]

    def wants(self, severity: Severity) -> list[str]:
        """Channels whose ``min_severity`` lets a notice of this severity through."""
        return [
            c.config.name for c in self._channels if severity.rank >= c.config.min_severity.rank
        ]

    async def send(
        self, notice: Notice, *, only: list[str] | None = None, timeout: float = 10.0
    ) -> list[str]:
        """Deliver to the channels that want it (or exactly ``only``); returns who accepted."""
        names = set(self.wants(notice.severity) if only is None else only)
        delivered: list[str] = []
        for channel in self._channels:
            name = channel.config.name
            if name not in names:
                continue
            try:
                await channel.deliver(notice, timeout=timeout)
            except Exception as exc:
                log.warning(
                    "notification_failed",
                    channel=name,
                    channel_type=channel.config.type,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
                continue
            delivered.append(name)
        log.info(
            "notification_sent", kind=notice.kind, group_id=notice.group_id, delivered=delivered
        )
        return delivered


class NotifyExecutor:
    """The ``notify`` action: tell the channels and carry on (a catalog step, not the end)."""

    name = "notify"

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Post an update about the incident; ok if at least one channel accepted it."""
        notice = Notice(
            kind="update",
            tenant_id=request.spec.tenant_id,
            group_id=request.incident_id,
            title=f"{request.spec.name}: incident #{request.incident_id}",
            severity=Severity(request.params.get("severity", Severity.MEDIUM.value)),
            reason=str(request.params.get("message", "selfheal is working on it")),
            services=[request.spec.service_id],
        )
        delivered = await self._notifier.send(notice, timeout=request.timeout)
        if delivered:
            return ActionResult(True, f"delivered to {', '.join(delivered)}")
        return ActionResult(False, "no channel accepted the notification")


class _PluginChannel:
    """A third-party channel behind the internal ``Channel`` interface."""

    def __init__(self, config: NotificationConfig, channel: plugin_api.Channel) -> None:
        self.config = config
        self._channel = channel

    async def deliver(self, notice: Notice, *, timeout: float) -> None:
        """Hand the plugin the public form of the notice."""
        public = plugin_api.Notice(
            kind=notice.kind,
            title=notice.headline,
            severity=notice.severity.value,
            reason=notice.reason,
            services=tuple(notice.services),
            dedup_key=notice.dedup_key,
            link=notice.link,
        )
        await self._channel.deliver(public, timeout=timeout)


def _build_channel(
    client: httpx.AsyncClient, config: NotificationConfig, plugins: Plugins, notify: Any
) -> Channel:
    """The channel for one configured notification, from its plugin factory."""
    factory = plugins.channels.get(config.type)
    if factory is None:
        raise plugins.missing("channels", config.type)
    if getattr(factory, "builtin", False):
        built: Channel = factory(BuiltinContext(http=client, notify=notify, options=config))
        return built
    model = factory.options_model
    options = model.model_validate(config.options) if model is not None else None
    return _PluginChannel(config, factory(plugin_api.PluginContext(client, notify, options)))
