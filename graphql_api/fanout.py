"""One execution per subscription event, shared by the subscribers that asked the same thing.

A task's progress event reaches every subscriber of that task. With a thousand subscribers,
running the same selection set a thousand times over the same object was most of the API
process's work, and the last subscriber got the event half a second after the first. A
subscription resolver that yields one object to all its subscribers marks it with ``share()``;
the executor then runs each (document, variables, role, API address) once per such event and
hands the same result to the rest. Anything not marked — queries, mutations, per-subscriber
items — executes as usual.

Only results without errors are shared, so error handling and masking stay per operation.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Generic, TypeVar

import orjson
from graphql import ExecutionResult

from domain.bounded import BoundedDict
from graphql_api.graphql_core_compat import own_subfield_memo
from graphql_api.strawberry_compat import StrawberryExecutionContext

# Events in flight at once: one per task with subscribers, and a few behind.
MAX_SHARED_EVENTS = 256

V = TypeVar("V")


class ByIdentity(Generic[V]):
    """A value per object, by identity, for the last ``size`` objects. Each entry holds its
    object, so the object's id cannot be reused for another while the entry lives."""

    def __init__(self, size: int) -> None:
        self._entries: BoundedDict[int, tuple[object, V]] = BoundedDict(size)

    def get(self, obj: object) -> V | None:
        entry = self._entries.get(id(obj))
        return entry[1] if entry is not None and entry[0] is obj else None

    def put(self, obj: object, value: V) -> V:
        self._entries[id(obj)] = (obj, value)
        return value


# payload -> {key: (operation node, result or future)}
_shared: ByIdentity[dict[tuple, Any]] = ByIdentity(MAX_SHARED_EVENTS)


def share(payload: object) -> object:
    """Mark a subscription payload as yielded, unchanged, to many subscribers."""
    if _shared.get(payload) is None:
        _shared.put(payload, {})
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


class SharedEventExecutor(StrawberryExecutionContext):
    """Strawberry's executor, plus reuse of results for payloads marked with ``share()``."""

    _share_key: tuple | None = None

    def _key(self) -> tuple:
        # One subscription's document, variables and caller never change: computed once.
        if self._share_key is None:
            self._share_key = (
                id(self.operation),  # from the parser cache: one node per distinct document
                _variables_key(self.variable_values.coerced),
                getattr(self.context_value, "role", None),
                getattr(self.context_value, "base_url", None),  # links point at the caller's host
            )
        return self._share_key

    def build_per_event_executor(self, payload: Any) -> Any:
        results = _shared.get(payload)
        found = results.get(self._key()) if results is not None else None
        if found is not None:  # skip copying the executor: nothing will run
            return _Reuse(found[1])
        executor = super().build_per_event_executor(payload)
        # graphql-core's per-event copy shares the subscription executor's memo of collected
        # subfields, keyed by the identity of each field list. Every event collects its field
        # lists anew, so no event ever finds another's entries, and each left 2-5 KB there
        # for the life of the subscription: the API grew ~1.9 MB/min under bench/soak.py. A
        # memo of the event's own still serves the items of its lists.
        own_subfield_memo(executor)
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        # Reached for a shared payload only when no result was there yet (build_per_event_executor
        # hands out the known ones): run it, and keep the result for the other subscribers.
        results = _shared.get(self.root_value)
        if results is None:
            return super().execute_operation(serially)
        operation = self.operation
        key = self._key()
        result = super().execute_operation(serially)
        if isinstance(result, ExecutionResult):
            if not result.errors:
                results[key] = (operation, result)  # the node is held, so its id stays unique
            return result
        if not inspect.isawaitable(result):  # an incremental (@defer/@stream) result: not shared
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
