"""A newcomer's start-up mistakes each give one clear line and a non-zero exit, before
any "listening" banner or key: a wrong DATABASE_URL, a SQLite file in a missing folder,
a port in use (serve and demo). And a normal start prints no Alembic chatter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from selfheal.testing import free_port
from tests.conftest import TEST_KEY
from tests.helpers import AgentProcess


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "SECRET_KEY": "cli-test-secret-key-0123456789abcdef",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "json",
    }
    return subprocess.run(
        [sys.executable, "-m", "selfheal.cli.main", *args],
        env=os.environ | base | env,
        cwd=tmp_path,  # no .env from the checkout
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output
    assert "listening" not in output
    assert len(output.splitlines()) == 1, output
    return output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://postgres@127.0.0.1:{port}/x", "connection refused"),
        ("postgresql://postgres@127.0.0.1:5432/selfheal_missing_{uid}", "does not exist"),
    ],
    ids=["refused", "missing_database"],
)
def test_a_wrong_database_url_is_one_line_and_exit_2(
    tmp_path: Path, url: str, expected: str
) -> None:
    url = url.format(port=free_port(), uid=uuid.uuid4().hex[:8])
    result = _run(tmp_path, "serve", "--port", str(free_port()), DATABASE_URL=url)
    assert result.returncode == 2
    line = _one_line(result)
    assert expected in line
    assert "DATABASE_URL" in line or "database" in line


@pytest.mark.parametrize("where", ["tmp", "root"])
def test_a_sqlite_file_in_a_missing_folder_is_refused(tmp_path: Path, where: str) -> None:
    folder = tmp_path / "no" / "such" if where == "tmp" else Path("/nonexistent-selfheal-test")
    url = f"sqlite:///{folder / 'selfheal.db'}"
    result = _run(tmp_path, "serve", "--port", str(free_port()), DATABASE_URL=url)
    assert result.returncode == 2
    line = _one_line(result)
    assert str(folder) in line
    assert "does not exist" in line
    assert not folder.exists()


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_port_in_use_is_named_before_the_banner(tmp_path: Path, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        url = f"sqlite:///{tmp_path / 'selfheal.db'}"
        result = _run(tmp_path, command, "--port", str(port), DATABASE_URL=url)
    assert result.returncode != 0
    line = _one_line(result)
    assert f"port {port} is in use, try --port" in line
    assert "sh_" not in result.stdout + result.stderr  # no generated key shown


async def test_a_normal_start_prints_no_alembic_chatter(tmp_path: Path) -> None:
    config = tmp_path / "selfheal.yaml"
    config.write_text("services: []\n")
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'selfheal.db'}",
        "API_KEYS": TEST_KEY,
        "SECRET_KEY": "cli-test-secret-key-0123456789abcdef",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "json",
    }
    agent = AgentProcess(
        config=str(config), env=env, port=free_port(), log_path=tmp_path / "agent.log"
    )
    await agent.start()
    await agent.stop()
    log = agent.log()
    assert "listening" in log
    assert "setup plugin" not in log
    assert "Context impl" not in log
    assert "database_migrated" in log  # said once, in our words
