"""Pieces of process supervision: rotating log files, exit descriptions, the config section."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.actions.logfiles import RotatingLog
from selfheal.actions.supervisor import describe_exit
from selfheal.configfile import parse_config
from selfheal.errors import ConfigError


def test_log_rotates_by_size_and_keeps_backups(tmp_path: Path) -> None:
    path = tmp_path / "out" / "svc.stdout.log"
    log = RotatingLog(path, max_bytes=10, backups=2)
    for chunk in (b"aaaaaa", b"bbbbbb", b"cccccc", b"dddddd"):
        log.write(chunk)
    log.close()
    assert path.read_bytes() == b"dddddd"
    assert path.with_name("svc.stdout.log.1").read_bytes() == b"cccccc"
    assert path.with_name("svc.stdout.log.2").read_bytes() == b"bbbbbb"
    assert not path.with_name("svc.stdout.log.3").exists()  # the oldest was dropped


def test_log_without_backups_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    log = RotatingLog(path, max_bytes=8, backups=0)
    log.write(b"12345")
    log.write(b"67890")
    log.close()
    assert path.read_bytes() == b"67890"
    assert list(tmp_path.iterdir()) == [path]


def test_log_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    path.write_bytes(b"old ")
    log = RotatingLog(path, max_bytes=100, backups=1)
    log.write(b"new")
    log.close()
    assert path.read_bytes() == b"old new"


@pytest.mark.parametrize(
    ("code", "text"),
    [(0, "exited with code 0"), (3, "exited with code 3"), (-9, "killed by SIGKILL")],
)
def test_exit_descriptions(code: int, text: str) -> None:
    assert describe_exit(code) == text


def test_process_section_is_validated() -> None:
    config = parse_config(
        "services:\n"
        "  - id: w\n"
        "    health_url: http://127.0.0.1:7001/health\n"
        "    process: {command: [python3, w.py], stop_signal: INT, stop_timeout: 2s}\n"
    )
    process = config.services[0].process
    assert process is not None
    assert process.stop_timeout == 2.0
    assert process.stop_signal == "INT"
    with pytest.raises(ConfigError, match=r"<config>:4: services\[0\].process.stop_signal"):
        parse_config(
            "services:\n"
            "  - id: w\n"
            "    health_url: http://127.0.0.1:7001/health\n"
            "    process: {command: [python3], stop_signal: TREM}\n"
        )
    with pytest.raises(ConfigError, match="either a process or a container"):
        parse_config(
            "services:\n"
            "  - id: w\n"
            "    health_url: http://127.0.0.1:7001/health\n"
            "    container: web-1\n"
            "    process: {command: [python3]}\n"
        )
