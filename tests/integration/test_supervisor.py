"""The supervisor on its own: real processes, their logs, a hung one killed after stop_timeout."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from selfheal.actions.supervisor import Supervisor
from selfheal.configfile import ProcessConfig, parse_config
from selfheal.runtime.agent import Agent
from selfheal.types import ServiceKey
from tests.helpers import wait_for

KEY = ServiceKey("default", "w")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_hung_process_is_killed_after_stop_timeout_and_restarted(tmp_path: Path) -> None:
    exits: list[str] = []
    supervisor = Supervisor(log_dir=tmp_path, on_exit=lambda _key, what: exits.append(what))
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(300)"
    )
    config = ProcessConfig(command=[sys.executable, "-c", script], stop_timeout=0.5)
    first = await supervisor.start(KEY, config)
    info = supervisor.info(KEY)
    assert info is not None
    log = Path(info.stdout_log)

    async def printed() -> bool:
        return log.exists() and "up" in log.read_text()

    await wait_for(printed, 10)
    began = time.monotonic()
    second = await supervisor.restart(KEY)
    took = time.monotonic() - began
    assert second != first
    assert not _alive(first)
    assert took >= 0.5, "SIGTERM is ignored: only SIGKILL after stop_timeout ends it"
    assert exits == [], "an exit the agent asked for is not reported"
    info = supervisor.info(KEY)
    assert info is not None
    assert info.restarts == 1
    assert info.last_exit == "killed by SIGKILL"
    await supervisor.stop_all()
    assert not _alive(second)
    assert supervisor.info(KEY) is None


async def test_unexpected_exit_is_reported_with_its_code(tmp_path: Path) -> None:
    exits: list[str] = []
    reported = asyncio.Event()

    def on_exit(_key: ServiceKey, what: str) -> None:
        exits.append(what)
        reported.set()

    supervisor = Supervisor(log_dir=tmp_path, on_exit=on_exit)
    script = "import sys; print('bye', file=sys.stderr); sys.exit(3)"
    await supervisor.start(KEY, ProcessConfig(command=[sys.executable, "-c", script]))
    await asyncio.wait_for(reported.wait(), 10)
    assert exits == ["exited with code 3"]
    info = supervisor.info(KEY)
    assert info is not None
    assert info.running is False
    assert "bye" in Path(info.stderr_log).read_text()
    await supervisor.stop_all()


async def test_env_is_clean_and_cwd_is_used(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("SELFHEAL_TEST_LEAK", "agent-secret")
    supervisor = Supervisor(log_dir=tmp_path / "logs", on_exit=lambda _k, _w: None)
    script = "import os; e = os.environ; print(os.getcwd(), e.get('SELFHEAL_TEST_LEAK'), e['MINE'])"
    config = ProcessConfig(
        command=[sys.executable, "-c", script], cwd=str(tmp_path), env={"MINE": "yes"}
    )
    await supervisor.start(KEY, config)
    info = supervisor.info(KEY)
    assert info is not None

    async def printed() -> str:
        path = Path(info.stdout_log)
        return path.read_text() if path.exists() else ""

    assert await wait_for(printed, 10) == f"{tmp_path} None yes\n"
    await supervisor.stop_all()


async def test_leftover_of_a_killed_agent_is_killed_before_the_next_start(tmp_path: Path) -> None:
    script = "import time; time.sleep(300)"
    config = ProcessConfig(command=[sys.executable, "-c", script])
    before = Supervisor(log_dir=tmp_path, on_exit=lambda _k, _w: None)
    leftover = await before.start(KEY, config)
    # the agent that started it dies without stopping it; a new one starts
    after = Supervisor(log_dir=tmp_path, on_exit=lambda _k, _w: None)
    fresh = await after.start(KEY, config)

    async def leftover_gone() -> bool:
        return not _alive(leftover)

    await wait_for(leftover_gone, 10)
    assert _alive(fresh)
    await after.stop_all()
    assert not _alive(fresh)
    await before.stop_all()


async def test_a_pid_reused_by_another_program_is_left_alone(tmp_path: Path) -> None:
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(300)", start_new_session=True
    )
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "w.pid").write_text(str(other.pid))
    supervisor = Supervisor(log_dir=tmp_path, on_exit=lambda _k, _w: None)
    await supervisor.start(KEY, ProcessConfig(command=[sys.executable, "-c", "pass"]))
    assert _alive(other.pid)
    await supervisor.stop_all()
    other.kill()
    await other.wait()


async def test_process_env_is_stored_encrypted(sqlite_url: str, make_settings: Any) -> None:
    config = parse_config(
        "services:\n"
        "  - id: w\n"
        "    health_url: http://127.0.0.1:1/health\n"
        "    process: {command: [sleep, '300'], env: {DB_PASSWORD: hunter2-hunter2}}\n"
    )
    agent = Agent(make_settings(sqlite_url, CHECK_INTERVAL=60.0), file_config=config)
    await agent.start()
    try:
        spec = agent.fleet.specs()[0]
        assert spec.process is not None
        assert spec.process.env == {"DB_PASSWORD": "hunter2-hunter2"}
        async with agent.db.session() as session:
            stored = (await session.execute(text("select settings from services"))).scalar_one()
        assert "hunter2" not in str(stored)
        assert "env_encrypted" in str(stored)
    finally:
        await agent.stop()
