"""Settings from the environment and ``.env``, built once and passed down.

The variable names are fixed by the public contract (``ARCHITECTURE.md``) and
are unprefixed on purpose: ``PORT``, ``DATABASE_URL``, ``CHECK_INTERVAL``...
Durations are seconds, thresholds are in the unit their name says.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from selfheal.errors import ConfigError
from selfheal.outbound import parse_networks

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///selfheal.db"
# placeholders as written in examples and tutorials, compared letters and digits only
# ("your-secret-key-here", "CHANGE_ME", "<secret>"); refused outside DEBUG
_PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "secret",
        "secretkey",
        "mysecret",
        "mysecretkey",
        "yoursecret",
        "yoursecretkey",
        "yoursecretkeyhere",
        "yoursecrethere",
        "yourkeyhere",
        "dev",
        "development",
        "test",
        "default",
        "password",
        "placeholder",
        "replaceme",
        "insecure",
        "example",
        "none",
        "null",
    }
)
_PLACEHOLDER_WORDS = ("changeme", "replaceme", "yoursecret", "placeholder", "secretkeyhere")


def is_placeholder_secret(value: str) -> bool:
    """Whether a SECRET_KEY is an example value rather than a key someone generated."""
    letters = re.sub(r"[^a-z0-9]", "", value.lower())
    return (
        letters in _PLACEHOLDER_SECRETS
        or any(word in letters for word in _PLACEHOLDER_WORDS)
        or not letters  # "<>", "***"
        or value.strip().startswith("<")  # "<your key>"
    )


class Settings(BaseSettings):
    """Everything the agent reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # "SECRET_KEY=" copied from .env.example means unset
    )

    # server
    SECRET_KEY: SecretStr | None = None
    DEBUG: bool = False
    HOST: str = "127.0.0.1"
    PORT: int = Field(default=5000, ge=1, le=65535)
    DATABASE_URL: str = DEFAULT_DATABASE_URL
    SELFHEAL_CONFIG: Path | None = None
    DATA_DIR: Path = Path(".selfheal")
    # database waits (PostgreSQL): past them a request answers 503 instead of hanging
    DB_CONNECT_TIMEOUT: float = Field(default=2.0, gt=0, le=60)
    DB_STATEMENT_TIMEOUT: float = Field(default=3.0, gt=0, le=600)
    DB_POOL_TIMEOUT: float = Field(default=2.0, gt=0, le=60)

    # checks and detection
    CHECK_INTERVAL: float = Field(default=10.0, gt=0)
    MAX_RETRIES: int = Field(default=3, ge=1)
    RETRY_DELAY: float = Field(default=5.0, ge=0)
    CHECK_TIMEOUT: float = Field(default=5.0, gt=0)
    RECOVERY_PROBES: int = Field(default=1, ge=1)
    MAX_CONCURRENT_PROBES: int = Field(default=1000, ge=1)
    MEMORY_THRESHOLD: float = 90.0
    LATENCY_THRESHOLD: float = 1500.0
    ERROR_RATE_THRESHOLD: float = 0.3
    CPU_THRESHOLD: float = 90.0
    RESPONSE_TIME_THRESHOLD: float = 2000.0

    # remediation
    ACTION_COOLDOWN: float = Field(default=60.0, ge=0)
    MAX_ATTEMPTS: int = Field(default=3, ge=1)
    VERIFY_TIMEOUT: float = Field(default=60.0, gt=0)
    VERIFY_INTERVAL: float = Field(default=1.0, gt=0)
    WEBHOOK_TIMEOUT: float = Field(default=10.0, gt=0)
    EXEC_TIMEOUT: float = Field(default=30.0, gt=0)

    # learning (see docs/learning.md)
    LEARNING_STRATEGY: Literal["thompson", "greedy"] = "thompson"
    LEARNING_DISCOUNT: float = Field(default=0.9, gt=0, le=1)
    ANOMALY_DETECTION: bool = True
    ANOMALY_METRICS: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "response_ms",
            "latency_ms",
            "error_rate",
            "cpu",
            "memory",
            "request_rate",
        ]
    )
    ANOMALY_PERIOD: float = Field(default=300.0, gt=0)
    ANOMALY_LEARNING_PERIOD: float = Field(default=86400.0, ge=0)
    AUTO_THRESHOLDS: bool = False

    # outbound policy (see "Outbound policy" in the README): CIDR lists
    OUTBOUND_DENY: Annotated[list[str], NoDecode] = Field(default_factory=list)
    OUTBOUND_ALLOW: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # retention (see docs/operations.md): days of history kept, 0 keeps it forever;
    # the per-table values override RETENTION_DAYS for one kind of row
    RETENTION_DAYS: float = Field(default=90.0, ge=0)
    RETENTION_ROLLUPS_DAYS: float | None = Field(default=None, ge=0)
    RETENTION_STATUS_CHANGES_DAYS: float | None = Field(default=None, ge=0)
    RETENTION_INCIDENTS_DAYS: float | None = Field(default=None, ge=0)
    RETENTION_AUDIT_DAYS: float | None = Field(default=None, ge=0)
    RETENTION_INTERVAL: float = Field(default=3600.0, gt=0)
    RETENTION_BATCH_SIZE: int = Field(default=2000, ge=1, le=5000)

    # API
    API_KEY_HEADER: str = "X-API-Key"
    API_KEYS: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    MAX_BODY_BYTES: int = Field(default=1_048_576, ge=1024)
    # API requests at work at once (the rest wait in order; see api/admission.py), and
    # how many may wait before 503; /health, /metrics and the live feeds are never held
    API_CONCURRENCY: int = Field(default=4, ge=1, le=1000)
    API_QUEUE: int = Field(default=1000, ge=0, le=100_000)
    # failed authentications a client address may make per minute before 429
    AUTH_FAILURES_PER_MINUTE: int = Field(default=30, ge=1, le=100_000)
    # /metrics without a key, every tenant's series (a scraper on a private network)
    METRICS_PUBLIC: bool = False

    # logging and extras
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FILE: Path | None = None
    LOG_FORMAT: Literal["console", "json"] | None = None
    REDIS_URL: str | None = None
    MONGO_URI: str | None = None
    # dockerd's socket, for services with ``container:`` (Docker's own variable name)
    DOCKER_HOST: str = "unix:///var/run/docker.sock"

    @field_validator("API_KEYS", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("OUTBOUND_DENY", "OUTBOUND_ALLOW", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("OUTBOUND_DENY", "OUTBOUND_ALLOW")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return [str(net) for net in parse_networks(value)]

    @field_validator("ANOMALY_METRICS", mode="before")
    @classmethod
    def _split_metrics(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ANOMALY_METRICS")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        known = {"response_ms", "latency_ms", "error_rate", "cpu", "memory", "request_rate"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(known)}")
        return value

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("DATABASE_URL")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalise_database_url(value)

    @model_validator(mode="after")
    def _refuse_unsupported(self) -> Settings:
        if self.MONGO_URI:
            raise ValueError(
                "MONGO_URI is set, but selfheal does not use MongoDB. Store data in SQLite "
                "or PostgreSQL through DATABASE_URL (e.g. "
                "postgresql+asyncpg://user@host/db) and unset MONGO_URI."
            )
        key = self.SECRET_KEY.get_secret_value() if self.SECRET_KEY else None
        if key is not None and not self.DEBUG and is_placeholder_secret(key):
            raise ValueError(
                "SECRET_KEY is a placeholder value (as in an example file). Make a key with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))' and set "
                "SECRET_KEY to it, or unset SECRET_KEY to have one generated in DATA_DIR "
                "(DEBUG=true allows placeholders for development)"
            )
        return self

    @property
    def log_format(self) -> Literal["console", "json"]:
        """JSON in production, readable lines when debugging, unless LOG_FORMAT says."""
        return self.LOG_FORMAT or ("console" if self.DEBUG else "json")

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite store."""
        return self.DATABASE_URL.startswith("sqlite")

    def secret_key(self) -> str:
        """The key that encrypts stored webhook secrets.

        Without SECRET_KEY a random one is created once and kept in DATA_DIR, so
        a laptop install works with no setup and secrets survive restarts.
        """
        if self.SECRET_KEY is not None:
            return self.SECRET_KEY.get_secret_value()
        path = self.DATA_DIR / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.DATA_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(key)
        return key


def normalise_database_url(url: str) -> str:
    """Point the common URL spellings at the async drivers selfheal uses."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError(
            f"DATABASE_URL must be a SQLite or PostgreSQL URL "
            f"(sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db), "
            f"got scheme {url.split(':', 1)[0]!r}"
        )
    return url


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation failures into one readable ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{name}: {message}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
