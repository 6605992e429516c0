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
from selfheal.types import DEFAULT_TENANT, Severity

log = get_logger(__name__)


class Notifier:
    """Every configured channel by tenant, and delivery that reports instead of raising.

    A notice goes only to the channels of its own tenant: a config-file channel
    belongs to the tenant it names (the default tenant if it names none), and a
    tenant's channels can be replaced while the agent runs (``set_tenant``).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        configs: list[NotificationConfig],
        plugins: Plugins | None = None,
    ) -> None:
        self._client = client
        self._plugins = plugins or load_plugins()
        self._by_tenant: dict[str, list[Channel]] = {}
        tenants: dict[str, list[NotificationConfig]] = {}
        for config in configs:
            tenants.setdefault(config.tenant_id, []).append(config)
        for tenant_id, wanted in tenants.items():
            self.set_tenant(tenant_id, wanted)

    def set_tenant(self, tenant_id: str, configs: list[NotificationConfig]) -> None:
        """Make ``configs`` the tenant's channels (kept as they are if unchanged)."""
        current = self._by_tenant.get(tenant_id, [])
        if [c.config for c in current] == configs:
            return
        built: list[Channel] = []
        for config in configs:
            try:
                built.append(self.build(config))
            except Exception as exc:  # a channel set through the API must not stop the rest
                log.error(
                    "channel_unusable",
                    tenant_id=tenant_id,
                    channel=config.name,
                    error=_without_url(f"{type(exc).__name__}: {exc}", config.url)[:300],
                )
        if built:
            self._by_tenant[tenant_id] = built
        else:
            self._by_tenant.pop(tenant_id, None)

    def build(self, config: NotificationConfig) -> Channel:
        """The channel for one config; raises what its plugin raises for bad options."""
        return _build_channel(self._client, config, self._plugins, self.notify_plugin)

    async def notify_plugin(self, notice: plugin_api.Notice) -> list[str]:
        """``PluginContext.notify``: a plugin's notice to every channel that wants it."""
        return await self.send(
            Notice(
                kind=notice.kind,
                tenant_id=DEFAULT_TENANT,
                group_id=0,
                title=notice.title,
                severity=Severity(notice.severity),
                reason=notice.reason,
                services=list(notice.services),
                link=notice.link,
            )
        )

    def channels_for(self, tenant_id: str) -> list[str]:
        """Names of the tenant's channels."""
        return [c.config.name for c in self._by_tenant.get(tenant_id, [])]

    def wants(self, severity: Severity, tenant_id: str = DEFAULT_TENANT) -> list[str]:
        """The tenant's channels whose ``min_severity`` lets a notice of this severity through."""
        return [
            c.config.name
            for c in self._by_tenant.get(tenant_id, [])
            if severity.rank >= c.config.min_severity.rank
        ]

    async def send(
        self, notice: Notice, *, only: list[str] | None = None, timeout: float = 10.0
    ) -> list[str]:
        """Deliver to the notice's tenant's channels that want it (or exactly ``only``);
        returns who accepted."""
        tenant_id = notice.tenant_id
        names = set(self.wants(notice.severity, tenant_id) if only is None else only)
        delivered: list[str] = []
        for channel in list(self._by_tenant.get(tenant_id, [])):
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
                    tenant_id=tenant_id,
                    error=_without_url(f"{type(exc).__name__}: {exc}", channel.config.url)[:300],
                )
                continue
            delivered.append(name)
        log.info(
            "notification_sent",
            kind=notice.kind,
            tenant_id=tenant_id,
            group_id=notice.group_id,
            delivered=delivered,
        )
        return delivered


def _without_url(text: str, url: str | None) -> str:
    """An error text without the channel's URL: it often carries a token."""
    return text.replace(url, "<channel url>") if url else text


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
