"""A broken config file is refused with the file, line and field, and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from selfheal.cli.main import cli

GOOD = """\
services:
  - id: payments
    health_url: http://127.0.0.1:6000/health
    interval: 10s
    thresholds: {latency_ms: 800}
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_good_config_passes(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(GOOD)
    code, output = run("check-config", str(path))
    assert code == 0, output
    assert "1 services" in output


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(GOOD + "  - id: [unclosed\n")
    code, output = run("check-config", str(path))
    assert code == 2
    assert f"{path}:" in output
    assert "not valid YAML" in output


def test_bad_field_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("interval: 10s", "interval: sometimes"))
    code, output = run("check-config", str(path))
    assert code == 2
    assert f"{path}:4: services[0].interval" in output
    assert "not a duration" in output


def test_unknown_and_missing_fields(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("services:\n  - id: x\n    helth_url: http://a/health\n")
    code, output = run("check-config", str(path))
    assert code == 2
    assert f"{path}:3: services[0].helth_url: unknown field" in output
    # health_url is needed unless a check plugin probes the service instead
    path.write_text("services:\n  - id: x\n")
    code, output = run("check-config", str(path))
    assert code == 2
    assert f"{path}:2: services[0]: a service needs a health_url or a check" in output


def test_missing_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(GOOD + "    secret: ${SURELY_NOT_SET_ANYWHERE}\n")
    code, output = run("check-config", str(path))
    assert code == 2
    assert "SURELY_NOT_SET_ANYWHERE is not set" in output
    assert ":6:" in output


def test_serve_refuses_a_broken_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("services: [{id: x, health_url: 'ftp://x'}]\n")
    result = subprocess.run(
        [sys.executable, "run.py", "--config", str(path), "--port", "5999"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parents[2],
        env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "health_url" in result.stderr
    assert "http" in result.stderr


def test_mongo_uri_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "selfheal.cli.main", "serve", "--port", "5998"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "MONGO_URI": "mongodb://x", "DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr


def test_serve_refuses_to_start_when_a_plugin_fails_to_import(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # an installed distribution (its dist-info on sys.path) whose executor cannot import
    info = tmp_path / "site" / "broken_plugin-1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text("[selfheal.executors]\nfix = no_such_module_q:Fix\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    code, output = run("serve", "--port", "1")
    assert code == 2
    assert "plugin 'fix' (selfheal.executors) from package broken-plugin 1.2" in output
    assert "failed to import: ModuleNotFoundError" in output


def test_the_seeds_placeholder_secret_key_is_a_clear_start_up_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "selfheal.cli.main", "serve", "--port", "5998"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "SECRET_KEY": "your-secret-key-here",
            "DATA_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SECRET_KEY is a placeholder" in result.stderr
    assert "secrets.token_urlsafe(32)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout + result.stderr


def test_a_sub_second_interval_in_the_config_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fast.yaml"
    path.write_text(GOOD.replace("interval: 10s", "interval: 0.001"))
    code, output = run("check-config", str(path))
    assert code == 2
    assert "interval" in output
    assert "between 1 and 86400 seconds" in output
