"""One execution per subscription event, shared by the subscribers that asked the same thing.

A task's progress event reaches every subscriber of that task. With a thousand subscribers,
running the same selection set a thousand times over the same object was most of the API
process's work, and the last subscriber got the event half a second after the first. A
subscription resolver that yields one object to all its subscribers marks it with ``share()``;
the executor then runs each (document, variables, role) once per such event and hands the
same result to the rest. Anything not marked — queries, mutations, per-subscriber items —
executes as usual.

Only results without errors are shared, so error handling and masking stay per operation.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import orjson
from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# Events in flight at once: one per task with subscribers, and a few behind.
MAX_SHARED_EVENTS = 256

# id(payload) -> (payload, {key: result or future}). Holding the payload keeps its id unique.
_shared: OrderedDict[int, tuple[object, dict[tuple, Any]]] = OrderedDict()


def share(payload: object) -> object:
    """Mark a subscription payload as yielded, unchanged, to many subscribers."""
    if id(payload) not in _shared:
        _shared[id(payload)] = (payload, {})
        while len(_shared) > MAX_SHARED_EVENTS:
            _shared.popitem(last=False)
    return payload


def _variables_key(values: dict[str, Any]) -> bytes:
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS, default=str)


class _Reuse:
    """A per-event executor whose result is already known."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        found = self.result
        return found if isinstance(found, ExecutionResult) else asyncio.shield(found)


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, plus reuse of results for payloads marked with ``share()``."""

    _share_key: tuple | None = None

    def _key(self) -> tuple:
        # One subscription's document, variables and caller never change: computed once.
        if self._share_key is None:
            self._share_key = (
                id(self.operation),  # from the parser cache: one node per distinct document
                _variables_key(self.variable_values.coerced),
                getattr(self.context_value, "role", None),
            )
        return self._share_key

    def build_per_event_executor(self, payload: Any) -> Any:
        entry = _shared.get(id(payload))
        if entry is not None and entry[0] is payload:
            found = entry[1].get(self._key())
            if found is not None:  # skip copying the executor: nothing will run
                return _Reuse(found[1])
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None) -> Any:
        entry = _shared.get(id(self.root_value))
        if entry is None or entry[0] is not self.root_value:
            return super().execute_operation(serially)
        operation = self.operation
        key = self._key()
        results = entry[1]
        found = results.get(key)
        if found is not None:
            return _Reuse(found[1]).execute_operation(serially)
        result = super().execute_operation(serially)
        if isinstance(result, ExecutionResult):
            if not result.errors:
                results[key] = (operation, result)  # the node is held, so its id stays unique
            return result
        future = asyncio.ensure_future(result)
        results[key] = (operation, future)

        def keep_if_clean(done: asyncio.Future) -> None:
            if done.cancelled() or done.exception() is not None or done.result().errors:
                results.pop(key, None)
            else:
                results[key] = (operation, done.result())

        future.add_done_callback(keep_if_clean)
        return asyncio.shield(future)
