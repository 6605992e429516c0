"""The SDK's public surface: ``__all__`` is exactly what it exports, and it stays light."""

from __future__ import annotations

import subprocess
import sys
import types

import self_healing_sdk


def test_all_matches_the_public_names() -> None:
    public = {
        name
        for name, value in vars(self_healing_sdk).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # from __future__ import annotations
    }
    assert public | {"__version__"} == set(self_healing_sdk.__all__)
    for name in self_healing_sdk.__all__:
        assert getattr(self_healing_sdk, name) is not None
        value = getattr(self_healing_sdk, name)
        if isinstance(value, type):
            assert value.__doc__, f"{name} has no docstring"


def test_importing_the_sdk_pulls_in_nothing_of_the_agent() -> None:
    code = (
        "import sys, self_healing_sdk, self_healing_sdk.wsgi, self_healing_sdk.asgi\n"
        "heavy = {'selfheal', 'fastapi', 'starlette', 'sqlalchemy', 'aiosqlite', 'asyncpg',"
        " 'pydantic', 'alembic', 'aiohttp', 'flask', 'uvicorn', 'structlog', 'prometheus_client'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"
