"""The executor the schema runs with: Strawberry's, plus shortcuts no client can tell apart.

- **The compiled read plan** (``graphql_api.plan``): a query operation whose fields the plan
  knows is answered a level at a time; anything else, and anything unexpected on the way,
  runs on the normal executor below. Off when the context says so (``VKCP_READ_PLAN=0``).
- **Plain leaf fields.** A page of 100 comments with their group, post, author and matches is
  about 3,000 fields, and most are leaves that only read a stored attribute: no resolver, no
  arguments, no permission. graphql-core builds a resolve-info object, runs the resolver
  through its machinery and dispatches on the return type for each of them; here such a
  field is read and serialized directly. Anything unusual on the way (a null where the
  schema forbids one, a value the scalar refuses, an error object) goes back to the normal
  path, which produces the error exactly as before.
- **Shared subscription events** (``graphql_api.fanout``): one execution per event for every
  subscriber that asked the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import ExecutionResult, GraphQLObjectType, OperationType, Undefined, is_leaf_type, is_non_null_type

from graphql_api.fanout import SharedEventExecutor
from graphql_api.plan import Plan, plans

# (id(schema), type name, field name) -> a plan, or None: not a plain leaf
_LeafPlan = tuple[Callable[..., Any], Callable[[Any], Any], bool]  # resolver, coerce, non-null
_plans: dict[tuple[int, str, str], _LeafPlan | None] = {}


def _plan(schema: Any, parent_type: GraphQLObjectType, field_name: str) -> _LeafPlan | None:
    key = (id(schema), parent_type.name, field_name)
    try:
        return _plans[key]
    except KeyError:
        pass
    plan = None
    field_def = parent_type.fields.get(field_name)
    # Strawberry marks the resolver of a field that only reads an attribute (no resolver, no
    # extensions or permissions); it ignores the resolve info.
    if field_def is not None and not field_def.args and getattr(field_def.resolve, "_is_default", False):
        return_type = field_def.type
        non_null = is_non_null_type(return_type)
        leaf = return_type.of_type if non_null else return_type
        if is_leaf_type(leaf):
            plan = (field_def.resolve, leaf.coerce_output_value, non_null)  # as complete_leaf_value
    _plans[key] = plan
    return plan


class ApiExecutor(SharedEventExecutor):
    def execute_operation(self, serially: bool | None = None) -> Any:
        if (
            self.operation.operation is OperationType.QUERY
            and getattr(self.context_value, "read_plan", False)
            and not (self.middleware_manager is not None and self.middleware_manager.middlewares)
        ):
            plan = plans.find(self)
            if plan is not None:
                return self._run_plan(plan, serially)
        return super().execute_operation(serially)

    async def _run_plan(self, plan: Plan, serially: bool | None) -> Any:
        data = await plan.run(self.context_value.read_model, self.variable_values)
        if data is not None:
            return ExecutionResult(data, None)
        result = super().execute_operation(serially)  # the plan met something it cannot answer exactly
        return await result if self.is_awaitable(result) else result

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        if not node.arguments and not node.directives and not (
            self.middleware_manager is not None and self.middleware_manager.middlewares
        ):
            plan = _plan(self.schema, parent_type, node.name.value)
            if plan is not None:
                resolve, coerce, non_null = plan
                try:
                    value = resolve(source, None)
                    if value is None:
                        if not non_null:
                            return None
                    elif not isinstance(value, Exception) and not self.is_awaitable(value):
                        serialized = coerce(value)
                        if serialized is not None and serialized is not Undefined:
                            return serialized
                except Exception:  # noqa: BLE001 - the normal path below reports it properly
                    pass
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
