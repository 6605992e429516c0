"""The OpenAPI document states every bound and lists the 4xx answers of each route.

Walks ``/openapi.json`` as a client generator would: every number a client may send has
a minimum and a maximum, every string a length, pattern or enum, and every route lists
the errors it can answer, each in the ``{"error": {"code", "message"}}`` shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from selfheal.api.app import create_app
from selfheal.config import Settings

PUBLIC = {"/health", "/health/ready", "/metrics"}
ERROR_REF = "#/components/schemas/ErrorPublic"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pydantic import SecretStr

    tmp = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'selfheal.db'}",
        SECRET_KEY=SecretStr("test-secret-key-not-for-production"),
        DATA_DIR=tmp / "data",
    )
    return create_app(settings).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, items in document["paths"].items():
        for method, operation in items.items():
            yield method.upper(), path, operation


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    return schema


def unbounded(document: dict[str, Any], schema: dict[str, Any], where: str) -> Iterator[str]:
    """Every number without both bounds and every string without a limit, recursively."""
    schema = resolve(document, schema)
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key, []):
            yield from unbounded(document, part, where)
    kind = schema.get("type")
    if kind in ("integer", "number") and not (
        ("minimum" in schema or "exclusiveMinimum" in schema)
        and ("maximum" in schema or "exclusiveMaximum" in schema)
    ):
        yield f"{where}: {kind} without minimum and maximum"
    if kind == "string" and not ({"maxLength", "pattern", "enum", "const", "format"} & set(schema)):
        yield f"{where}: string without maxLength, pattern or enum"
    if kind == "array":
        if "maxItems" not in schema:
            yield f"{where}: array without maxItems"
        yield from unbounded(document, schema.get("items", {}), f"{where}[]")
    for name, sub in schema.get("properties", {}).items():
        yield from unbounded(document, sub, f"{where}.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        yield from unbounded(document, extra, f"{where}.*")


def test_every_route_lists_the_4xx_answers_it_gives(document: dict[str, Any]) -> None:
    missing: list[str] = []
    for method, path, operation in operations(document):
        responses = operation["responses"]
        params = operation.get("parameters", [])
        expected = set()
        if path not in PUBLIC:
            expected.add("401")  # no key, or a wrong one
            expected.add("403")  # a key whose scope does not allow this
        if params or "requestBody" in operation:
            expected.add("422")  # a parameter or body out of its bounds
        if any(p["in"] == "path" for p in params):
            expected.add("404")  # no such row for this tenant
        if "requestBody" in operation:
            expected |= {"400", "413"}  # malformed JSON, a body over MAX_BODY_BYTES
        if any(p["name"] == "cursor" for p in params):
            expected.add("400")  # not the next_cursor of a previous page
        for status in sorted(expected - set(responses)):
            missing.append(f"{method} {path}: {status} not listed")
        for status, answer in responses.items():
            if status.startswith("4"):
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref") != ERROR_REF:
                    missing.append(f"{method} {path}: {status} is not the error shape")
    assert missing == []


def test_the_error_shape_is_documented(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["ErrorPublic"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]


def test_every_number_and_string_a_client_sends_is_bounded(document: dict[str, Any]) -> None:
    problems: list[str] = []
    for method, path, operation in operations(document):
        for param in operation.get("parameters", []):
            if param["in"] in ("path", "query"):
                where = f"{method} {path} {param['name']}"
                problems.extend(unbounded(document, param["schema"], where))
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            problems.extend(unbounded(document, body["schema"], f"{method} {path} body"))
    assert problems == []


@pytest.mark.parametrize(
    ("schema", "field", "low", "high"),
    [
        ("ServiceCreate", "interval", 1, 86_400),
        ("ServiceCreate", "timeout", 0.1, 300),
        ("ServiceUpdate", "interval", 1, 86_400),
        ("SilenceCreate", "duration", 1, 366 * 86_400),
    ],
)
def test_duration_bounds_are_stated(
    document: dict[str, Any], schema: str, field: str, low: float, high: float
) -> None:
    prop = document["components"]["schemas"][schema]["properties"][field]
    number = next(
        part
        for option in prop["anyOf"]
        for part in option.get("anyOf", [option])
        if part.get("type") == "number"
    )
    assert (number["minimum"], number["maximum"]) == (low, high)
