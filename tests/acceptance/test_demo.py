"""``selfheal demo --duration 40`` heals every fault of its fleet and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from selfheal.demo.runner import FLEET
from selfheal.testing import free_port


@pytest.mark.slow
def test_demo_heals_every_fault(tmp_path: object) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfheal.cli.main",
            "demo",
            "--duration",
            "40",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "Every fault was detected and healed" in output
    for item in FLEET:
        assert f"{item.name:<10} {item.fault:<8} detected at" in output
    for step in ("DETECTED", "DECIDED", "ACTING", "VERIFIED", "RESOLVED"):
        assert step in output
    assert "/dashboard" in output
    assert "API key" in output
