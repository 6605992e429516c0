"""Escalation reaches every channel in its real format; resolution follows, once per group."""

from __future__ import annotations

import asyncio
from typing import Any

from selfheal.testing import AgentServer, FakeService
from tests.acceptance.test_guard_rails import all_up, config, first_incident, running, service
from tests.conftest import api_client
from tests.fakes import NotificationSinks, SmtpSink
from tests.helpers import wait_for


async def test_every_channel_gets_trigger_then_resolve(sqlite_url: str, make_settings: Any) -> None:
    sinks = await NotificationSinks().start()
    smtp = await SmtpSink().start()
    stuck = FakeService("payments", heals=False)
    cfg = config(
        [service(stuck, tags=["critical"])],
        policies={"max_attempts": 1, "verify_timeout": "1s"},
        notifications=[
            {"name": "slack", "type": "slack", "url": sinks.url("slack")},
            {"name": "teams", "type": "teams", "url": sinks.url("teams")},
            {
                "name": "pd",
                "type": "pagerduty",
                "routing_key": "R0UT1NGKEY",
                "url": sinks.url("pagerduty"),
            },
            {
                "name": "mail",
                "type": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "from": "selfheal@example.test",
                "to": ["oncall@example.test", "lead@example.test"],
            },
            {
                "name": "hook",
                "type": "webhook",
                "url": sinks.url("webhook"),
                "secret": sinks.webhook_secret,
            },
            {
                "name": "quiet",
                "type": "slack",
                "url": sinks.url("slack"),
                "min_severity": "critical",
            },
        ],
    )
    try:
        async with running([stuck]), AgentServer(make_settings(sqlite_url), cfg) as server:
            client = api_client(server.url)
            await all_up(client, 1)
            stuck.break_as("http_500")
            incident = await first_incident(client, "payments", status="escalated")

            async def all_triggered() -> bool:
                return (
                    len(smtp.messages) == 1
                    and len(sinks.of("pagerduty")) == 1
                    and len(sinks.of("slack")) == 2
                )

            await wait_for(all_triggered, 10)
            # critical service + outage: severity critical, so the "quiet" channel hears it too
            assert len(sinks.of("slack")) == 2
            slack = sinks.of("slack")[0]
            assert slack["text"].startswith("[selfheal] Escalated: payments")
            assert slack["blocks"][0]["type"] == "header"
            teams = sinks.of("teams")[0]
            card = teams["attachments"][0]["content"]
            assert card["type"] == "AdaptiveCard"
            assert "payments" in card["body"][0]["text"]
            trigger = sinks.of("pagerduty")[0]
            assert trigger["event_action"] == "trigger"
            assert trigger["routing_key"] == "R0UT1NGKEY"
            assert trigger["payload"]["severity"] == "critical"
            assert trigger["payload"]["source"] == "payments"
            mail = smtp.messages[0]
            assert mail["Subject"].startswith("[selfheal] Escalated: payments")
            assert mail["To"] == "oncall@example.test, lead@example.test"
            assert "Timeline:" in mail.get_payload()
            hook = sinks.of("webhook")[0]
            assert hook["event"] == "incident.escalated"
            assert hook["incidents"][0]["id"] == incident["id"]

            stuck.heal()
            await first_incident(client, "payments", status="resolved")

            async def all_resolved() -> bool:
                return (
                    len(smtp.messages) == 2
                    and len(sinks.of("pagerduty")) == 2
                    and len(sinks.of("slack")) == 4
                )

            await wait_for(all_resolved, 10)
            await asyncio.sleep(0.3)
            resolve = sinks.of("pagerduty")[1]
            assert resolve == {
                "routing_key": "R0UT1NGKEY",
                "dedup_key": trigger["dedup_key"],
                "event_action": "resolve",
            }
            assert smtp.messages[1]["Subject"].startswith("[selfheal] Resolved: payments")
            assert len(sinks.of("slack")) == 4
            assert sinks.of("slack")[2]["text"].startswith("[selfheal] Resolved")
            assert len(sinks.of("teams")) == 2
            assert sinks.of("webhook")[1]["event"] == "incident.resolved"
            assert sinks.rejected == []
            await client.aclose()
    finally:
        await sinks.stop()
        await smtp.stop()
