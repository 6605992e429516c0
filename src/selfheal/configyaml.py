"""YAML plumbing of the config file: ``${VAR}`` expansion and file:line locations."""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class MissingEnvError(Exception):
    def __init__(self, name: str, path: tuple[str | int, ...]) -> None:
        self.name, self.path = name, path


def expand_env(value: Any, *, path: tuple[str | int, ...]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is None:
                if default is None:
                    raise MissingEnvError(name, path)
                return default
            return found

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {k: expand_env(v, path=(*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, path=(*path, i)) for i, v in enumerate(value)]
    return value


def is_union_tag(part: str | int) -> bool:
    # pydantic adds the union member's name ("str", "CatalogAction") into the location
    return isinstance(part, str) and (part[:1].isupper() or part in {"str", "list[str]"})


def dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def error_message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling; see the config reference in the README)"
    if err["type"] == "missing":
        return "required field is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int:
    """Line (1-based) of the deepest YAML node that the location path reaches."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
