"""`selfheal serve` with nothing configured: SQLite file, a generated key, an empty fleet."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import httpx

from selfheal.testing import free_port


async def test_serve_with_no_configuration_at_all(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_KEYS", "DATABASE_URL"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "run.py",
        "--port",
        str(port),
        cwd=Path(__file__).parents[2],
        env=env
        | {"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{tmp_path}/s.db"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        banner = b""
        while b"sh_" not in banner:
            banner += await asyncio.wait_for(proc.stderr.readline(), 20)
        key = re.search(rb"(sh_[A-Za-z0-9_-]+)", banner)
        assert key is not None
        stored = (tmp_path / "data" / "api_key").read_text().strip()
        assert stored == key.group(1).decode()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            status = await client.get("/status", headers={"X-API-Key": stored})
            assert status.status_code == 200
            assert status.json()["services"] == {}
            assert status.json()["database"] == "sqlite"
            assert (await client.get("/status")).status_code == 401
        assert (tmp_path / "s.db").exists()
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
