"""The GraphQL schema: queries, mutations, subscriptions, limits and error codes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import ExecutionResult, GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from selfheal.errors import ApiError

from .errors import ErrorCodes, log
from .limits import limit_extensions
from .mutation import Mutation
from .query import Query
from .subscription import Subscription


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # the caller's mistakes are answered, not logged as the agent's failures
        for error in errors:
            cause: Any = error.original_error
            if cause is not None and not isinstance(cause, (ApiError, GraphQLError)):
                log.error("graphql_failed", path=error.path, exc_info=cause)


class SubscriptionsOverWebSocket(SchemaExtension):
    """A subscription sent over HTTP is answered BAD_REQUEST, saying where it runs."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        request = getattr(context.context, "request", None)
        if context.operation_type is OperationType.SUBSCRIPTION and not isinstance(
            request, WebSocket
        ):
            # a result set before execution is the answer: nothing runs
            context.result = ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        "subscriptions run over a WebSocket to /graphql (protocol "
                        "graphql-transport-ws, the key in connection_init), not over HTTP",
                        extensions={"code": "BAD_REQUEST", "status": 400},
                    )
                ],
            )
        yield


def build_schema() -> strawberry.Schema:
    """The schema served at ``/graphql``."""
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[*limit_extensions(), SubscriptionsOverWebSocket, ErrorCodes],
    )
