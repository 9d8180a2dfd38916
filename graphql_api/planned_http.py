"""Queries clients send again and again, answered from the HTTP request straight to the read plan.

A client sends the same few documents with new variables: the console's review page, Relay's
lists and refetches, a script's poll. The first time a document comes (a POST with a JSON body),
it takes the normal path: Strawberry's view parses and validates it, the limits check it, and
graphql-core's executor runs it, on the read plan when the plan knows it (``executor.py``). When
the plan answered, the executor leaves the operation on the context and the view keeps it here,
by the request's ``query`` and ``operationName``.

The next request with the same text comes here. What the normal path decided once per document
(it parses, it is valid, it is within the depth, alias and token limits, it is a query) holds
for the same text. What it does per request is done here the same way, with the same functions:
the caller's token (``get_context``), the variables (graphql-core's ``get_variable_values``, as
its executor coerces them), the plan (``plans``, by the directives' variables as always), the
deadline (504), the errors' codes (``errors.coded_error``), the response (``create_response``:
media type, 503 with ``Retry-After`` when a dependency is away), the request log and metrics.
This skips Strawberry's request and execution pipeline, about a quarter of the CPU of a
one-statement page.

Anything else takes the normal path, unchanged: a GET, a body with ``extensions`` or with
values of the wrong type, variables that do not coerce (the normal path reports them), a document
not seen yet. When the plan hands the operation back (a value it cannot answer exactly), the
normal path runs it with the plan off, so nothing is read twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLSchema, OperationDefinitionNode, get_variable_values

from domain.bounded import BoundedDict
from graphql_api.errors import coded_error
from graphql_api.observability import OperationRecord, RequestRecord
from graphql_api.plan import UNKNOWN_SHAPE, Plan, plans, unreported

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from graphql_api.context import Context

KEPT = 256  # documents kept (by query text and operation name), as many as the validation cache keeps
# A longer text is not kept (the texts are the keys): real clients' documents are a few KB, and
# 256 bodies of up to VKCP_MAX_BODY_BYTES each would be a gigabyte held for nobody.
MAX_KEPT_QUERY = 64 * 1024
JSON_BODY = "application/json"
_FIELDS = frozenset(("query", "variables", "operationName"))


@dataclass(frozen=True, slots=True)
class PlannedOperation:
    """What graphql-core's executor knew when the plan answered an operation."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    fragment_definitions: Any
    fragments: Any


@dataclass(frozen=True, slots=True)
class _Kept:
    planned: PlannedOperation
    name: str | None  # as the request log names the operation
    type: str | None


@dataclass(slots=True)
class Declined:
    """The request takes the normal path; ``context`` (already made) goes with it, plan off."""

    context: Context | None = None


class PlannedRequests:
    def __init__(self, size: int = KEPT) -> None:
        self._kept: BoundedDict[tuple[str, str | None], _Kept] = BoundedDict(size)
        self.answered = 0  # requests answered here (the rest took the normal path)

    def keep(self, query: str, operation_name: str | None, planned: PlannedOperation, record: RequestRecord) -> None:
        """Called by the view after the normal path answered ``query`` on the plan."""
        if len(query) > MAX_KEPT_QUERY:
            return
        operation = record.operations[-1] if record.operations else OperationRecord(None, "query")
        self._kept[(query, operation_name)] = _Kept(planned, operation.name, operation.type)

    async def answer(
        self,
        request: Request,
        record: RequestRecord,
        *,
        get_context: Callable[[], Awaitable[Context]],
        within_deadline: Callable[[Awaitable[Any]], Awaitable[Any]],
        create_response: Callable[[Any], Response],
    ) -> Response | Declined:
        """The response to a kept document's request, or ``Declined``."""
        media_type = (request.headers.get("content-type") or "").partition(";")[0].strip().lower()
        if request.method != "POST" or media_type != JSON_BODY:
            return Declined()
        try:
            body = orjson.loads(await request.body())  # kept by Starlette for the normal path
        except orjson.JSONDecodeError:
            return Declined()  # the normal path says what is wrong with it
        if type(body) is not dict or not body.keys() <= _FIELDS:
            return Declined()
        query, variables, name = body.get("query"), body.get("variables"), body.get("operationName")
        if type(query) is not str or not (variables is None or type(variables) is dict):
            return Declined()
        if not (name is None or type(name) is str):
            return Declined()
        kept = self._kept.get((query, name))
        if kept is None:
            return Declined()
        planned = kept.planned
        coerced = get_variable_values(planned.schema, planned.operation.variable_definitions or (), variables or {})
        if isinstance(coerced, list):
            return Declined()  # the normal path reports them, coded as ever
        context = await get_context()
        plan = plans.find_for(
            planned.schema, planned.operation, planned.fragment_definitions, planned.fragments, coerced
        )
        metrics = context.metrics
        report = metrics.read_plan_fallback if metrics is not None else unreported
        if not isinstance(plan, Plan):  # other @skip/@include values that ask what the plan cannot answer
            report(UNKNOWN_SHAPE, plan.kind)
            return Declined(context)
        result = await within_deadline(plan.run(context.read_model, coerced, report))
        if result is None:
            return Declined(context)  # handed back: the normal path answers, without the plan
        errors = [coded_error(e, context.request_id) for e in result.errors or ()]
        record.operations.append(OperationRecord(kept.name, kept.type, errors=len(errors)))
        data: dict[str, Any] = {"data": result.data}
        if errors:
            data["errors"] = [e.formatted for e in errors]
        self.answered += 1
        return create_response(data)
