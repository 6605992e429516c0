"""The GraphQL cost and depth limits, on the schema alone (no agent)."""

from __future__ import annotations

import pytest
from graphql import parse, validate

from selfheal.api.graphql.limits import MAX_COST, CostRule
from selfheal.api.graphql.schema import build_schema

SCHEMA = build_schema()._schema


def refused(query: str) -> list[str]:
    return [e.message for e in validate(SCHEMA, parse(query), [CostRule])]


@pytest.mark.parametrize(
    "query",
    [
        "{ services { id status } }",
        "{ incidents(first: 50) { id timeline { at } actions { id } } }",  # 2,100 points
        "{ services(first: 500) { id name tags } }",
        "{ __schema { types { name fields { name } } } }",  # introspection is free
    ],
)
def test_ordinary_queries_pass(query: str) -> None:
    assert refused(query) == []


@pytest.mark.parametrize(
    "query",
    [
        "{ services(first: 500) { incidents(first: 500) { id } } }",
        "query($n: Int!) { services(first: $n) { incidents(first: $n) { id } } }",
        # fragments are counted where they are spread, however they nest
        "fragment I on Incident { id summary service { id incidents(first: 100) { id } } }"
        " { incidents(first: 500) { ...I } }",
    ],
)
def test_costly_queries_are_refused_with_what_to_do(query: str) -> None:
    messages = refused(query)
    assert len(messages) == 1
    assert f"more than {MAX_COST} points" in messages[0]
    assert "smaller pages" in messages[0]


def test_an_exponential_document_is_refused_without_walking_it_all() -> None:
    # each fragment spreads the previous one twice: 2**40 fields if walked naively
    parts = ["fragment F0 on Service { id }"]
    for n in range(1, 40):
        inner = f"...F{n - 1}"
        parts.append(
            f"fragment F{n} on Service {{ {inner} a{n}: incidents {{ service {{ {inner} }} }} }}"
        )
    parts.append("{ services { ...F39 } }")
    assert refused(" ".join(parts))
