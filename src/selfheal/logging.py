"""structlog configured once: JSON lines in production, readable lines in development.

Stage boundaries bind ``service_id``, ``incident_id`` and ``action_id`` with
``structlog.contextvars.bound_contextvars`` so every line below carries them.
A last processor masks any value whose key looks like a secret, so a careless
``log.info(..., secret=...)`` cannot leak one, and the password of any URL
written into a line (``scheme://user:password@host``). Libraries that would
echo SQL parameters or request URLs at DEBUG (SQLAlchemy, aiosqlite, httpx)
are held at WARNING whatever ``LOG_LEVEL`` says.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Literal

import structlog

_SECRET_WORDS = (
    "secret",
    "password",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "signature",
    "key_hash",
)
REDACTED = "***"
# the :password@ part of a URL (up to the last @ before the path: passwords may hold @)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*):[^\s/]*@")
# libraries that log SQL with its parameters, or full request URLs, below WARNING
_QUIET_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "httpx", "httpcore", "uvicorn.access")


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    if "@" not in text:
        return text
    return _URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", text)


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask values of keys that name a secret and passwords in URLs, at any depth of dicts."""
    for key, value in list(event_dict.items()):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = redact_url(value)
        elif isinstance(value, dict):
            event_dict[key] = redact_secrets(_logger, _method, dict(value))
    return event_dict


def configure_logging(
    *,
    level: str = "INFO",
    fmt: Literal["console", "json"] = "json",
    log_file: Path | None = None,
) -> None:
    """Set up structlog and the stdlib root logger (uvicorn, sqlalchemy) the same way."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    # JSON needs the traceback rendered into the event ("exception"); the console
    # renderer prints it itself
    renderers: list[Any] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if fmt == "json"
        else [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
    )
    root = logging.getLogger()
    root.handlers.clear()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    # the access log repeats our own request logging; the others would write SQL
    # parameters (key hashes, stored values) or URLs with credentials at DEBUG/INFO
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Alembic's "setup plugin ..." and "Context impl ..." lines at every start; a
    # schema change is logged by storage.db as database_migrated instead
    logging.getLogger("alembic").setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for a module; event names are snake_case facts like ``incident_opened``."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
