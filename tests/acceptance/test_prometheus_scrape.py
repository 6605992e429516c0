"""Prometheus itself scrapes the agent with deploy/prometheus/prometheus.yml: the key
comes from a credentials file as a bearer token, and the target is up."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from selfheal.testing import AgentServer, free_port
from tests.conftest import TEST_KEY
from tests.helpers import wait_for

CONFIG = Path(__file__).parents[2] / "deploy" / "prometheus" / "prometheus.yml"


async def test_prometheus_scrapes_with_the_key_from_a_file(
    sqlite_url: str, make_settings: Any, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is required (Debian package 'prometheus'; .ci/run installs it)")
    async with AgentServer(make_settings(sqlite_url)) as server:
        config = yaml.safe_load(CONFIG.read_text())
        key_file = tmp_path / "selfheal_api_key"
        key_file.write_text(TEST_KEY + "\n")
        config["global"]["scrape_interval"] = "1s"
        config["rule_files"] = []
        job = config["scrape_configs"][0]
        job["authorization"]["credentials_file"] = str(key_file)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{server.port}"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

                async def target_up() -> dict[str, Any] | None:
                    try:
                        answer = await client.get("/api/v1/targets")
                    except httpx.HTTPError:
                        return None
                    targets = answer.json()["data"]["activeTargets"]
                    return targets[0] if targets and targets[0]["health"] == "up" else None

                target = await wait_for(target_up, 30, interval=0.5)
                assert target["lastError"] == ""
                query = await client.get("/api/v1/query", params={"query": "agent_info"})
                assert query.json()["data"]["result"]
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 10)
