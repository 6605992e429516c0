"""A ``notify`` step of the catalog reaches the notification channels, not the service's
webhook (which has no handler for it and answered 404 before)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from selfheal.configfile import parse_config
from selfheal.testing import AgentServer, free_port
from tests.conftest import api_client
from tests.helpers import list_incidents, wait_for
from tests.integration.test_plugins_in_the_agent import Receiver


async def test_notify_step_reaches_the_channels(sqlite_url: str, make_settings: Any) -> None:
    webhook_calls: list[dict[str, Any]] = []

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async def webhook(request: web.Request) -> web.Response:
        webhook_calls.append(await request.json())
        return web.json_response({"error": {"message": "unknown action"}}, status=404)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with Receiver() as receiver:
        config = parse_config(
            json.dumps(
                {
                    "services": [
                        {
                            "id": "shop",
                            "health_url": f"http://127.0.0.1:{port}/health",
                            "webhook_url": f"http://127.0.0.1:{port}/webhook",
                            "secret": "s3cret-s3cret-s3cret",
                            "retries": 2,
                        }
                    ],
                    "catalog": [{"type": "http_error", "actions": ["notify"]}],
                    "notifications": [
                        {
                            "name": "ops",
                            "type": "webhook",
                            "url": f"http://127.0.0.1:{receiver.port}/hook",
                        }
                    ],
                }
            )
        )
        try:
            async with AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=0.3), config) as agent:
                client = api_client(agent.url)

                async def acted() -> dict[str, Any] | None:
                    found = await list_incidents(client, service_id="shop")
                    if not found:
                        return None
                    detail = (await client.get(f"/api/incidents/{found[0]['id']}")).json()
                    done = [a for a in detail["actions"] if a["status"] != "pending"]
                    return done[0] if done else None

                action = await wait_for(acted, 20)
                assert action["action"] == "notify"
                assert action["executor"] == "notify"
                assert action["status"] == "succeeded", action
                assert action["result"]["detail"] == "delivered to ops"
                assert any(b["event"] == "incident.update" for b in receiver.bodies)
                assert not [c for c in webhook_calls if c["action"] == "notify"]
                await client.aclose()
        finally:
            await runner.cleanup()
