"""Put ``self_healing_sdk`` into the wheel from wherever it is.

In the repository the code lives in ``../src/self_healing_sdk`` (shared with the
``selfheal`` distribution); an sdist built from here carries it in
``src/self_healing_sdk``. Hatchling's static ``force-include`` cannot say "this
or that", so this hook does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Adds the SDK package to the wheel."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        for candidate in (
            root / "src" / "self_healing_sdk",
            root.parent / "src" / "self_healing_sdk",
        ):
            if (candidate / "__init__.py").is_file():
                build_data["force_include"][str(candidate)] = "self_healing_sdk"
                return
        raise FileNotFoundError("self_healing_sdk sources not found next to sdk/pyproject.toml")
