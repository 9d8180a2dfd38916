"""The executor the schema runs with: Strawberry's, plus shortcuts no client can tell apart.

- **The compiled read plan** (``graphql_api.plan``): a query operation whose fields the plan
  knows is answered a level at a time; anything else, and anything unexpected on the way, runs
  on Strawberry's executor as it always did, and is counted in ``/metrics`` by why
  (``vkcp_read_plan_fallbacks_total``). An outage is not handed over: the plan answers it, so
  a query meets a database that is away once, not twice. Off when the context says so
  (``VKCP_READ_PLAN=0``, ``create_app(read_plan=False)``).
- **Shared subscription events** (``graphql_api.fanout``): one execution per event for every
  subscriber that asked the same thing.
"""

from __future__ import annotations

from typing import Any

from graphql import OperationType

from graphql_api.context import Context
from graphql_api.fanout import SharedEventExecutor
from graphql_api.plan import UNKNOWN_SHAPE, Plan, plans
from graphql_api.planned_http import PlannedOperation


class ApiExecutor(SharedEventExecutor):
    def execute_operation(self, serially: bool | None = None) -> Any:
        if (
            self.operation.operation is OperationType.QUERY
            and getattr(self.context_value, "read_plan", False)
            and not (self.middleware_manager is not None and self.middleware_manager.middlewares)
        ):
            plan = plans.find(self)
            if isinstance(plan, Plan):
                return self._run_plan(plan, serially)
            self._fell_back(UNKNOWN_SHAPE, plan.kind)
        return super().execute_operation(serially)

    async def _run_plan(self, plan: Plan, serially: bool | None) -> Any:
        context = self.context_value
        answered = await plan.run(context.read_model, self.variable_values, self._fell_back)
        if answered is not None:
            if isinstance(context, Context):
                context.planned = PlannedOperation(
                    self.schema, self.operation, self.fragment_definitions, self.fragments
                )
            return answered
        result = super().execute_operation(serially)  # the plan met something it cannot answer exactly
        return await result if self.is_awaitable(result) else result

    def _fell_back(self, reason: str, kind: str) -> None:
        metrics = getattr(self.context_value, "metrics", None)  # None: a context no app made (tests)
        if metrics is not None:
            metrics.read_plan_fallback(reason, kind)
