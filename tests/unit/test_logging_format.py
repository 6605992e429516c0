"""JSON logs carry the traceback of a logged exception (3 a.m. needs the cause)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import structlog

from selfheal.logging import configure_logging, get_logger


def test_json_log_of_an_exception_holds_its_traceback(tmp_path: Path) -> None:
    log_file = tmp_path / "agent.log"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(fmt="json", log_file=log_file)
        try:
            raise RuntimeError("the cause, spelled out")
        except RuntimeError:
            get_logger("test").exception("heal_loop_failed", incident_id=7)
        for handler in logging.getLogger().handlers:
            handler.flush()
        line = json.loads(log_file.read_text().strip().splitlines()[-1])
        assert line["event"] == "heal_loop_failed"
        assert "RuntimeError: the cause, spelled out" in line["exception"]
        assert "Traceback" in line["exception"]
    finally:  # the rest of the suite runs with structlog's defaults
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
