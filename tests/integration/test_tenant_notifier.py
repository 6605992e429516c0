"""The notifier tells each tenant's channels about that tenant's notices only, and
never logs a channel's URL (it often carries a token)."""

from __future__ import annotations

import httpx
from structlog.testing import capture_logs

from selfheal.actions.channels import Notice
from selfheal.actions.notify import Notifier
from selfheal.configfile import NotificationConfig
from selfheal.types import Severity
from tests.fakes import NotificationSinks

TOKEN = "T0KEN-in-the-path-4242"


def notice(tenant_id: str) -> Notice:
    return Notice(
        kind="trigger",
        tenant_id=tenant_id,
        group_id=1,
        title=f"{tenant_id}-svc: http error",
        severity=Severity.HIGH,
        reason="down",
        services=[f"{tenant_id}-svc"],
    )


async def test_notices_reach_their_own_tenants_channels_and_urls_stay_out_of_logs() -> None:
    sinks = await NotificationSinks().start()
    try:
        async with httpx.AsyncClient() as client:
            default = NotificationConfig(name="a", type="slack", url=sinks.url("slack"))
            notifier = Notifier(client, [default])
            assert notifier.channels_for("team-b") == []
            assert await notifier.send(notice("team-b")) == []
            notifier.set_tenant(
                "team-b",
                [
                    NotificationConfig(
                        name="b", tenant="team-b", type="teams", url=sinks.url("teams")
                    ),
                    NotificationConfig(
                        name="broken", tenant="team-b", url=f"{sinks.url('nowhere')}/{TOKEN}"
                    ),
                ],
            )
            with capture_logs() as logs:
                assert await notifier.send(notice("team-b")) == ["b"]
            assert await notifier.send(notice("default")) == ["a"]
            assert [b["text"] for b in sinks.of("slack")] == [
                "[selfheal] Escalated: default-svc: http error"
            ]
            assert len(sinks.of("teams")) == 1
            failed = [e for e in logs if e["event"] == "notification_failed"]
            assert len(failed) == 1
            assert failed[0]["tenant_id"] == "team-b"
            assert TOKEN not in repr(logs)
            notifier.set_tenant("team-b", [])
            assert notifier.channels_for("team-b") == []
            assert notifier.channels_for("default") == ["a"]
    finally:
        await sinks.stop()
