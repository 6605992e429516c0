"""Limits on what one GraphQL document may ask for, checked before anything runs.

- depth: at most ``MAX_DEPTH`` nested fields (strawberry's ``QueryDepthLimiter``;
  introspection fields excepted);
- cost: every field costs one point for each object it is asked for, so a field
  inside a list costs the list's page size (``first``, or its default; a variable
  counts as the largest page) times over; at most ``MAX_COST`` points;
- aliases (``MAX_ALIASES``) and tokens (``MAX_TOKENS``), which bound the work of
  parsing and validating, and a body over ``MAX_BODY_BYTES`` is refused before.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    get_named_type,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from .types import PAGE_MAX

MAX_DEPTH = 10
MAX_COST = 25_000
MAX_ALIASES = 30
MAX_TOKENS = 5_000
LIST_WITHOUT_PAGE = 10  # what a list with no `first` (a timeline, tags) is taken to hold


def _page(field: FieldNode, definition: Any) -> int:
    for argument in field.arguments or ():
        if argument.name.value == "first":
            if isinstance(argument.value, IntValueNode):
                return max(1, min(int(argument.value.value), PAGE_MAX))
            return PAGE_MAX  # a variable: the largest page it may ask for
    declared = definition.args.get("first")
    if declared is not None and isinstance(declared.default_value, int):
        return declared.default_value
    return LIST_WITHOUT_PAGE


class CostRule(ValidationRule):
    """Refuses an operation whose cost (see the module) is over ``MAX_COST``."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        schema = self.context.schema
        root = schema.get_root_type(node.operation)
        if root is None:
            return
        fragments = {
            d.name.value: d
            for d in self.context.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        cost = self._cost(node.selection_set, root, fragments, 1, frozenset())
        if cost > MAX_COST:
            self.report_error(
                GraphQLError(
                    f"the query would cost more than {MAX_COST} points (one a field, times "
                    "the page size of each list around it); ask for smaller pages (first) "
                    "or fewer nested lists",
                    node,
                )
            )

    def _cost(
        self,
        selections: SelectionSetNode,
        parent: Any,
        fragments: dict[str, FragmentDefinitionNode],
        times: int,
        seen: frozenset[str],
    ) -> int:
        total = 0
        for node in selections.selections:
            if total > MAX_COST:
                break  # enough to refuse; do not walk an exponential document further
            if isinstance(node, FieldNode):
                total += self._field(node, parent, fragments, times, seen)
            elif isinstance(node, InlineFragmentNode):
                cond = node.type_condition
                inner = self.context.schema.get_type(cond.name.value) if cond else parent
                total += self._cost(node.selection_set, inner or parent, fragments, times, seen)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = fragments.get(name)
                if fragment is None or name in seen:
                    continue  # other rules report unknown and cyclic fragments
                inner = self.context.schema.get_type(fragment.type_condition.name.value)
                total += self._cost(
                    fragment.selection_set, inner or parent, fragments, times, seen | {name}
                )
        return total

    def _field(
        self,
        node: FieldNode,
        parent: Any,
        fragments: dict[str, FragmentDefinitionNode],
        times: int,
        seen: frozenset[str],
    ) -> int:
        if node.name.value.startswith("__") or not isinstance(parent, GraphQLObjectType):
            return 0
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return 0  # an unknown field: FieldsOnCorrectTypeRule says so
        kind = definition.type
        if isinstance(kind, GraphQLNonNull):
            kind = kind.of_type
        each = times * (_page(node, definition) if isinstance(kind, GraphQLList) else 1)
        if node.selection_set is None:
            return each
        inner = get_named_type(definition.type)
        return each + self._cost(node.selection_set, inner, fragments, each, seen)


def limit_extensions() -> list[Callable[[], SchemaExtension]]:
    """Factories of the schema extensions that enforce the limits (one set a request)."""
    return [
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(QueryDepthLimiter, max_depth=MAX_DEPTH),
        partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES),
        partial(AddValidationRules, [CostRule]),
    ]


__all__ = ["MAX_COST", "MAX_DEPTH", "CostRule", "limit_extensions"]
