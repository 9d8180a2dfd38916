"""Multiplexed subscriptions: subscribers asking for the same thing share one stream.

A thousand browser tabs watching one task send the same ``taskProgress`` document with the
same variables. Run one by one, each subscription resumes its own resolver, executes the
selection and passes its result through every extension for every event: about 200 µs of
the API process per subscriber per event, nearly all of it identical work, and the last of
a thousand subscribers heard of an event several hundred milliseconds after the first.

Here the first such subscriber starts a *feed* — one ``schema.stream`` — and every later one
with the same document, variables, operation name and role joins it. Per event the feed
executes once; each member only sends the frame. A member that joins a running feed first
gets the feed's latest item, which is the current state: what the subscription promises as
its first item anyway. Leaving (``complete`` from the client, or a closed socket) detaches a
member; the feed stops when its last member leaves or its stream ends.

Only root fields in ``MULTIPLEXED`` are shared: their first item is the current state, and
what they yield depends on nothing but their arguments and the caller's role. Everything else
runs per subscriber, exactly as Strawberry runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from functools import lru_cache
from typing import Any, ClassVar

import orjson
import structlog
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
from strawberry.types.execution import ExecutionResult, PreExecutionError

from graphql_api.codes import ErrorCode
from graphql_api.context import Context, new_request_id
from graphql_api.limits import DOCUMENT_CACHE_SIZE
from graphql_api.strawberry_compat import OperationStreamClosed, TransportWsHandler
from graphql_api.ws_messages import violation

log = structlog.get_logger(__name__)

MULTIPLEXED = frozenset({"taskProgress"})
# Root fields counted by name in the subscription gauge; anything else is "other", so clients
# cannot grow the label set.
SUBSCRIPTION_FIELDS = frozenset({"taskProgress", "taskEvents", "commentMatched"})
MEMBER_BUFFER = 1000  # items a slow member may fall behind before it is dropped
_END = object()


@lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def _root_field(query: str, operation_name: str | None) -> str | None:
    """The single root field of the subscription ``query`` runs, or None when it is not one
    plain field (or does not parse: the normal path reports that)."""
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name is not None and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation != OperationType.SUBSCRIPTION:
        return None
    selections = operations[0].selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode) or selections[0].directives:
        return None
    return selections[0].name.value


class Feed:
    """One running subscription and the members it feeds."""

    def __init__(self, key: tuple, registry: dict[tuple, Feed]) -> None:
        self.key = key
        self.members: set[asyncio.Queue] = set()
        self.latest: Any = None
        self.task: asyncio.Task | None = None
        self._registry = registry

    def join(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=MEMBER_BUFFER + 1)  # +1: the end marker
        if self.latest is not None:
            queue.put_nowait(self.latest)
        self.members.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue) -> None:
        self.members.discard(queue)
        if not self.members and self.task is not None:
            self._forget()
            self.task.cancel()

    def _forget(self) -> None:
        if self._registry.get(self.key) is self:
            del self._registry[self.key]

    def _send(self, item: Any) -> None:
        for queue in list(self.members):
            if queue.qsize() >= MEMBER_BUFFER:
                log.warning("subscriptions.member_dropped", field=self.key[0])
                self.members.discard(queue)
                queue.put_nowait(_END)
            else:
                queue.put_nowait(item)

    async def run(self, stream_factory) -> None:
        try:
            stream = await stream_factory()
            async with contextlib.aclosing(stream):
                async for result in stream:
                    self.latest = result
                    self._send(result)
        except Exception as error:  # a failure ends every member's subscription the same way
            self.latest = error
            self._send(error)
        finally:
            self._forget()  # before the end marker: nobody joins a finished feed
            self._send(_END)


class MultiplexingHandler(TransportWsHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, with shared feeds for ``MULTIPLEXED`` fields."""

    feeds: ClassVar[dict[tuple, Feed]] = {}  # one registry per process: feeds span connections

    async def handle_message(self, message: Any) -> None:
        problem = violation(message)
        if problem is not None:
            await self.handle_invalid_message(problem)  # the protocol's close: 4400
            return
        if message["type"] == "connection_init" and message.get("payload", {}) is None:
            message = {"type": "connection_init"}  # the protocol allows a null payload
        if message["type"] == "subscribe" and self._over_the_limit(message["id"]):
            # Strawberry's own refusal says the same without a code.
            error = GraphQLError(
                f"Subscription limit reached: at most {self.max_subscriptions_per_connection} operations "
                "at once on one connection",
                extensions={"code": ErrorCode.TOO_MANY_SUBSCRIPTIONS.value},
            )
            await self.send_message({"id": message["id"], "type": "error", "payload": [error.formatted]})
            return
        await super().handle_message(message)

    def _over_the_limit(self, operation_id: str) -> bool:
        limit = self.max_subscriptions_per_connection
        return (
            self.connection_acknowledged  # else Strawberry closes with 4401
            and operation_id not in self.operations  # else Strawberry closes with 4409
            and limit is not None
            and len(self.operations) >= limit
        )

    def _feed_key(self, operation: Operation[Context, None]) -> tuple | None:
        field = _root_field(operation.query, operation.operation_name)
        if field not in MULTIPLEXED or not isinstance(self.context, Context):
            return None
        try:
            variables = orjson.dumps(operation.variables or {}, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        # The container too: tests (and embedders) may run several apps in one process. The
        # base URL: download links in a task point at the host each client connected to.
        return (field, operation.query, operation.operation_name, variables, self.context.role,
                id(self.schema), id(self.context.container), self.context.base_url)

    async def handle(self) -> None:
        metrics = getattr(self.view, "metrics", None)
        if metrics is not None:
            metrics.websockets.inc()
        try:
            await super().handle()
        finally:
            if metrics is not None:
                metrics.websockets.dec()

    async def handle_task_exception(self, error: Exception) -> None:
        # A client that goes away while an item is being sent is how subscriptions end, not a
        # fault: no traceback for it (Strawberry logs every failed send as one).
        if isinstance(error, WebSocketDisconnected):
            log.info("subscription.client_gone", request_id=getattr(self.context, "request_id", None))
            return
        await super().handle_task_exception(error)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        field = _root_field(operation.query, operation.operation_name)
        if field is None:  # a query or mutation over the socket, or a document that fails
            return await self._run_operation(operation)
        label = field if field in SUBSCRIPTION_FIELDS else "other"
        request_id = getattr(self.context, "request_id", None)
        metrics = getattr(self.view, "metrics", None)
        log.info("subscription.started", request_id=request_id, field=field, operation=operation.operation_name)
        if metrics is not None:
            metrics.subscriptions.labels(label).inc()
        try:
            await self._run_operation(operation)
        finally:
            if metrics is not None:
                metrics.subscriptions.labels(label).dec()
            log.info("subscription.ended", request_id=request_id, field=field, operation=operation.operation_name)

    async def _run_operation(self, operation: Operation[Context, None]) -> None:
        key = self._feed_key(operation)
        if key is None:
            return await super().run_operation(operation)
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = Feed(key, self.feeds)
            # The feed's own context: fresh loaders and request id, the caller's role.
            context = replace(self.context, request_id=new_request_id(None), _loaders={})

            def stream():
                return self.schema.stream(
                    operation.query,
                    variable_values=operation.variables,
                    context_value=context,
                    root_value=self.root_value,
                    operation_name=operation.operation_name,
                )

            feed.task = asyncio.create_task(feed.run(stream))
        queue = feed.join()
        try:
            first = True
            while (item := await queue.get()) is not _END:
                if isinstance(item, Exception):
                    raise item
                if first and isinstance(item, PreExecutionError):
                    await self.send_pre_execution_error(operation, item)
                    return
                if not isinstance(item, ExecutionResult):
                    await self.reject_incremental_delivery(operation)
                    return
                await operation.send_next(item)
                first = False
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except (OperationStreamClosed, WebSocketDisconnected):
            return
        except Exception as error:  # as Strawberry does: report, complete, re-raise
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise
        finally:
            feed.leave(queue)
