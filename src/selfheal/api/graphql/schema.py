"""The GraphQL schema: queries, mutations, subscriptions, limits and error codes."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext

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


def build_schema() -> strawberry.Schema:
    """The schema served at ``/graphql``."""
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[*limit_extensions(), ErrorCodes],
    )
