"""Settings from the environment, and the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.config import Settings, load_settings, normalise_database_url
from selfheal.configfile import parse_config, parse_duration
from selfheal.errors import ConfigError


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch)
    assert (s.PORT, s.CHECK_INTERVAL, s.MAX_RETRIES, s.RETRY_DELAY, s.CHECK_TIMEOUT) == (
        5000,
        10,
        3,
        5,
        5,
    )
    assert (s.ACTION_COOLDOWN, s.MEMORY_THRESHOLD, s.LATENCY_THRESHOLD) == (60, 90, 1500)
    assert (s.ERROR_RATE_THRESHOLD, s.CPU_THRESHOLD, s.RESPONSE_TIME_THRESHOLD) == (0.3, 90, 2000)
    assert s.API_KEY_HEADER == "X-API-Key"
    assert s.DATABASE_URL.startswith("sqlite+aiosqlite://")


def test_env_values_and_key_list(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, API_KEYS=" a , b,,c ", PORT="6000", LOG_LEVEL="debug", DEBUG="true")
    assert [k.get_secret_value() for k in s.API_KEYS] == ["a", "b", "c"]
    assert s.PORT == 6000
    assert s.LOG_LEVEL == "DEBUG"
    assert s.log_format == "console"
    assert "a" not in repr(s.API_KEYS)  # secrets stay masked


def test_env_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("PORT=6123\nCHECK_INTERVAL=3\n")
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert (s.PORT, s.CHECK_INTERVAL) == (6123, 3)


def test_mongo_uri_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_URI", "mongodb://localhost")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings(_env_file=None)


@pytest.mark.parametrize(
    "placeholder",
    [
        "changeme",
        "your-secret-key-here",  # the seed's own .env example
        "YOUR_SECRET_KEY",
        "change-me-in-production",
        "<your secret key>",
        "replace_me",
        "secret",
        "placeholder",
    ],
)
def test_placeholder_secret_refused_outside_debug(
    monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    monkeypatch.setenv("SECRET_KEY", placeholder)
    with pytest.raises(ConfigError, match="SECRET_KEY is a placeholder") as refused:
        load_settings(_env_file=None)
    assert "secrets.token_urlsafe(32)" in str(refused.value)  # says how to make a key
    if len(placeholder) > 12:  # (short ones are words of the message itself)
        assert placeholder not in str(refused.value)  # never echoes the value
    monkeypatch.setenv("DEBUG", "1")
    assert load_settings(_env_file=None).DEBUG


@pytest.mark.parametrize("key", ["test-secret-key-not-for-production", "k3Y_9fQ2-Lz8wPq0"])
def test_real_looking_secret_keys_are_accepted(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("SECRET_KEY", key)
    assert load_settings(_env_file=None).secret_key() == key


def test_generated_secret_key_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, DATA_DIR=str(tmp_path))
    key = s.secret_key()
    assert len(key) > 30
    assert s.secret_key() == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_url_normalised(url: str, expected: str) -> None:
    assert normalise_database_url(url) == expected


def test_unknown_database_refused() -> None:
    with pytest.raises(ValueError, match="SQLite or PostgreSQL"):
        normalise_database_url("mysql://x/y")


@pytest.mark.parametrize(
    ("value", "seconds"), [(10, 10.0), (2.5, 2.5), ("500ms", 0.5), ("10s", 10.0), ("5m", 300.0)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-5s", True, None, "10 parsecs"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_full_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAY_SECRET", "pay-secret-value")
    config = parse_config(
        """
services:
  - id: payment-api
    name: Payment API
    health_url: http://127.0.0.1:6000/health
    webhook_url: http://127.0.0.1:6000/webhook
    secret: ${PAY_SECRET}
    interval: 10s
    timeout: 2s
    tags: [critical, api]
    thresholds: {latency_ms: 800}
    remediation:
      restart: {exec: "systemctl restart payment-api"}
      clear_cache: {webhook: true, params: {scope: all}}
policies: {cooldown: 2m, max_attempts: 2}
catalog:
  - type: high_memory
    actions: [clear_cache, {action: restart, params: {graceful: true}}]
notifications:
  - name: oncall
    url: http://127.0.0.1:7000/hook
"""
    )
    svc = config.services[0]
    assert svc.secret == "pay-secret-value"
    assert "pay-secret-value" not in repr(svc)
    assert (svc.interval, svc.timeout, svc.thresholds.latency_ms) == (10.0, 2.0, 800)
    assert svc.remediation["restart"].executor == "exec"
    assert svc.remediation["clear_cache"].executor == "webhook"
    assert config.policies.cooldown == 120
    assert [a.action for a in config.catalog[0].normalised()] == ["clear_cache", "restart"]


def test_errors_name_line_and_field() -> None:
    text = "services:\n  - id: a\n    health_url: http://x/h\n  - id: a\n    health_url: nope\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="f.yaml")
    message = info.value.message
    assert "f.yaml:5: services[1].health_url: must be an http:// or https:// URL" in message
    with pytest.raises(ConfigError, match="appears twice"):
        parse_config(text.replace("nope", "http://y/h"), source="f.yaml")


def test_env_default_syntax() -> None:
    config = parse_config(
        "services:\n  - id: a\n    health_url: http://127.0.0.1:${SURELY_UNSET_PORT:-81}/h\n"
    )
    assert config.services[0].health_url == "http://127.0.0.1:81/h"


def test_empty_and_non_mapping() -> None:
    assert parse_config("").services == []
    with pytest.raises(ConfigError, match="mapping"):
        parse_config("- a\n- b\n")
