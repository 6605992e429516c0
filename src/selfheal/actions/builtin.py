"""The built-in executors and channels as plugin factories.

They are named in selfheal's own ``pyproject.toml`` under ``selfheal.executors``
and ``selfheal.channels``, so they load by the same path as anyone's plugin.
Unlike a third-party plugin they may use the agent's internals, which reach
them through ``BuiltinContext``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from selfheal.actions.base import BuiltinContext
from selfheal.actions.channels import (
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
)
from selfheal.actions.command import CommandExecutor
from selfheal.actions.notify import NotifyExecutor
from selfheal.actions.webhook import WebhookExecutor
from selfheal.plugin_api import API_VERSION, PluginContext


class Builtin:
    """A factory for one built-in: ``build`` receives the context."""

    api_version: ClassVar[int] = API_VERSION
    options_model: ClassVar[type[BaseModel] | None] = None
    builtin: ClassVar[bool] = True  # gets a BuiltinContext and internal notices

    def __init__(self, build: Any) -> None:
        self._build = build

    def __call__(self, context: PluginContext) -> Any:
        """Build the executor or channel."""
        return self._build(context)


def _notify(context: PluginContext) -> NotifyExecutor:
    assert isinstance(context, BuiltinContext)
    assert context.notifier is not None
    return NotifyExecutor(context.notifier)


webhook_executor = Builtin(lambda c: WebhookExecutor(c.sessions))
# the agent's own hands: processes it supervises, containers through dockerd
process_executor = Builtin(lambda c: c.workloads.executors()["process"])
docker_executor = Builtin(lambda c: c.workloads.executors()["docker"])
exec_executor = Builtin(lambda c: CommandExecutor())
notify_executor = Builtin(_notify)

# a built-in channel's options are its NotificationConfig, already validated
webhook_channel = Builtin(lambda c: WebhookChannel(c.http, c.options))
slack_channel = Builtin(lambda c: SlackChannel(c.http, c.options))
teams_channel = Builtin(lambda c: TeamsChannel(c.http, c.options))
pagerduty_channel = Builtin(lambda c: PagerDutyChannel(c.http, c.options))
email_channel = Builtin(lambda c: EmailChannel(c.options))
