"""Errors in GraphQL answers carry REST's codes, upper-cased, in ``extensions``.

``{"message": ..., "extensions": {"code": "FORBIDDEN", "status": 403}}``: the code
of the REST error body for the same failure (``forbidden`` there), and its HTTP
status. A query that does not parse or validate (too deep or too costly
included) is ``BAD_REQUEST``; an unexpected failure is ``INTERNAL_ERROR`` with its
details only in the agent's log, never in the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from selfheal.errors import ApiError, StorageError
from selfheal.logging import get_logger

log = get_logger(__name__)

INTERNAL = "internal error; the agent logged the details"
_DEPTH = re.compile(r"'(?P<op>[^']*)' exceeds maximum operation depth of (?P<max>\d+)")


def extensions_of(exc: BaseException | None) -> tuple[dict[str, Any], str | None]:
    """The ``extensions`` for an error's cause, and a message to replace its own."""
    if isinstance(exc, ApiError):
        return {"code": exc.code.upper(), "status": exc.status_code}, None
    if isinstance(exc, StorageError):
        message = "the database is unavailable; retry in a few seconds"
        return {"code": "DATABASE_UNAVAILABLE", "status": 503}, message
    if exc is None:
        return {"code": "BAD_REQUEST", "status": 400}, None
    return {"code": "INTERNAL_ERROR", "status": 500}, INTERNAL


def as_graphql_error(exc: Exception) -> GraphQLError:
    """An exception as the GraphQL error to send (for subscriptions, which end on it)."""
    extensions, message = extensions_of(exc)
    if extensions["code"] == "INTERNAL_ERROR":
        log.error("graphql_failed", exc_info=exc)
    text = message or (exc.message if isinstance(exc, ApiError) else str(exc))
    return GraphQLError(text, extensions=extensions)


def clearer(message: str) -> str:
    """The depth limiter's words, with what to do about them."""
    found = _DEPTH.search(message)
    if found is None:
        return message
    return (
        f"the query nests fields more than {found['max']} levels deep (operation "
        f"{found['op']!r}); ask for fewer nested fields, or split it into several queries"
    )


class ErrorCodes(SchemaExtension):
    """Puts the code in every error of a result, and masks unexpected ones."""

    def on_operation(self) -> Iterator[None]:
        yield
        self._code(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # over a WebSocket every result (of a query, mutation or subscription) is
        # sent before the operation ends: coded here, one at a time
        self._code(result)
        yield

    def _code(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [self._coded(e) for e in errors]

    def _coded(self, error: GraphQLError) -> GraphQLError:
        if error.extensions and "code" in error.extensions:
            return error  # already coded (a subscription's, or a rule's own)
        extensions, message = extensions_of(error.original_error)
        return GraphQLError(
            message or clearer(error.message),
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions=extensions,
        )
