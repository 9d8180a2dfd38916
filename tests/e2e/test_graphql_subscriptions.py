"""Live task updates through a real server: uvicorn + a WebSocket client speaking graphql-transport-ws."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.graphql_support import container, server, tokens  # noqa: F401

PROTOCOL = "graphql-transport-ws"
FINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}




async def gql(base: str, token: str, query: str, variables: dict | None = None) -> dict:
    async with httpx.AsyncClient(base_url=f"http://{base}") as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {token}"}
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def open_ws(base: str, payload: dict | None) -> ClientConnection:
    ws = await connect(f"ws://{base}/graphql", subprotocols=[PROTOCOL])
    await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
    return ws


async def receive(ws: ClientConnection, timeout: float = 20) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def subscribe(ws: ClientConnection, op_id: str, query: str, variables: dict | None = None) -> None:
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}))


async def start_parse(base: str, token: str, ref: str) -> str:
    group = await gql(base, token, 'mutation($r: String!) { addGroup(ref: $r) { group { id } } }', {"r": ref})
    data = await gql(
        base, token, 'mutation($g: ID!) { startParse(input: {groupIds: [$g]}) { tasks { id } errors { code } } }',
        {"g": group["addGroup"]["group"]["id"]},
    )
    return data["startParse"]["tasks"][0]["id"]


PROGRESS = "subscription($id: ID!) { taskProgress(id: $id) { id state progress { done total message } } }"
EVENTS = "subscription { taskEvents { id state progress { done } } }"


async def test_task_progress_streams_until_the_task_ends(server: str, tokens: dict) -> None:
    ws = await open_ws(server, {"Authorization": f"Bearer {tokens['viewer']}"})
    try:
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(ws, "events", EVENTS)
        await asyncio.sleep(0.2)  # let taskEvents subscribe before the task starts

        task_id = await start_parse(server, tokens["operator"], "koshki_spb")
        await subscribe(ws, "progress", PROGRESS, {"id": task_id})

        progress: list[dict] = []
        events: list[dict] = []
        completed = False
        while not completed or not events or events[-1]["state"] not in FINAL:
            message = await receive(ws)
            if message["type"] == "complete":
                assert message["id"] == "progress"
                completed = True
            else:
                assert message["type"] == "next", message
                item = message["payload"]["data"]
                (progress.append(item["taskProgress"]) if message["id"] == "progress"
                 else events.append(item["taskEvents"]))
    finally:
        await ws.close()

    assert progress, "taskProgress yields the current task at once"
    assert all(p["id"] == task_id for p in progress)
    assert progress[-1]["state"] == "SUCCEEDED"
    assert all(p["state"] not in FINAL for p in progress[:-1])  # completes right after the final state
    done = [p["progress"]["done"] for p in progress]
    assert done == sorted(done)

    mine = [e for e in events if e["id"] == task_id]
    assert mine[0]["state"] == "QUEUED"
    assert "RUNNING" in [e["state"] for e in mine]
    assert mine[-1]["state"] == "SUCCEEDED"


async def test_task_progress_of_a_finished_task_yields_once_and_completes(server: str, tokens: dict) -> None:
    task_id = await start_parse(server, tokens["operator"], "velo_spb")
    query = "query($id: ID!) { task(id: $id) { state } }"
    while (await gql(server, tokens["viewer"], query, {"id": task_id}))["task"]["state"] not in FINAL:
        await asyncio.sleep(0.05)

    ws = await open_ws(server, {"authorization": f"Bearer {tokens['viewer']}"})  # any header case
    try:
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(ws, "1", PROGRESS, {"id": task_id})
        first = await receive(ws)
        assert first["type"] == "next"
        assert first["payload"]["data"]["taskProgress"]["state"] == "SUCCEEDED"
        assert (await receive(ws)) == {"id": "1", "type": "complete"}

        # An id that names no task, or cannot name one, is refused at once, with a code.
        for op_id, unknown in (("2", "987654"), ("3", "not-an-id")):
            await subscribe(ws, op_id, PROGRESS, {"id": unknown})
            refused = await receive(ws)
            assert (refused["id"], refused["type"]) == (op_id, "error"), refused
            assert [e["extensions"]["code"] for e in refused["payload"]] == ["NOT_FOUND"], refused
        # The connection lives on: the next subscription is served.
        await subscribe(ws, "4", PROGRESS, {"id": task_id})
        assert (await receive(ws))["type"] == "next"
    finally:
        await ws.close()


async def test_websocket_needs_a_valid_token(server: str, tokens: dict) -> None:
    for payload in (None, {"Authorization": "Bearer wrong"}):
        ws = await open_ws(server, payload)
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_mutations_over_websocket_need_an_operator(server: str, tokens: dict) -> None:
    ws = await open_ws(server, {"Authorization": f"Bearer {tokens['viewer']}"})
    try:
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(ws, "m", 'mutation { addGroup(ref: "velo_spb") { errors { code } } }')
        message = await receive(ws)
        assert message["type"] == "next"
        assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    finally:
        await ws.close()


async def test_only_the_graphql_transport_ws_protocol_is_spoken(server: str) -> None:
    async with connect(f"ws://{server}/graphql", subprotocols=["graphql-ws"]) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4406


def _publish_during_first_read(container, *changes) -> None:
    """The next ``tasks_by_ids`` returns what is stored, then publishes ``changes``: as if they
    happened while the subscription read the current state."""
    from domain.tasks import publish_task

    read = container.read_model.tasks_by_ids

    async def read_then_publish(ids):
        container.read_model.tasks_by_ids = read
        stale = await read(ids)
        for change in changes:
            await publish_task(container.adapters, change)
        return stale

    container.read_model.tasks_by_ids = read_then_publish


async def test_a_change_while_the_current_state_is_read_is_not_lost(server: str, tokens: dict, container) -> None:
    """The task finishes exactly while taskProgress reads it: the final event must still arrive."""
    from dataclasses import replace

    from domain.models import TaskState

    running = await _running_task(container)
    _publish_during_first_read(container, replace(running, state=TaskState.SUCCEEDED,
                                                  finished_at=container.adapters.clock.now()))
    ws = await open_ws(server, {"Authorization": f"Bearer {tokens['viewer']}"})
    try:
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(ws, "1", PROGRESS, {"id": str(running.id)})
        states = [(await receive(ws, timeout=2))["payload"]["data"]["taskProgress"]["state"] for _ in range(2)]
        assert states == ["RUNNING", "SUCCEEDED"]
        assert (await receive(ws, timeout=2)) == {"id": "1", "type": "complete"}
    finally:
        await ws.close()


async def test_progress_published_while_the_current_state_is_read_arrives_in_order(
    server: str, tokens: dict, container
) -> None:
    """Events queued during the first read all arrive, in order: none is skipped because a newer
    snapshot exists (a thousand subscribers joining a running task each read it late)."""
    from domain.models import TaskState
    from domain.tasks import publish_task

    running = await _running_task(container)
    _publish_during_first_read(container, await _progress(running, 1), await _progress(running, 2))
    ws = await open_ws(server, {"Authorization": f"Bearer {tokens['viewer']}"})
    try:
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(ws, "1", PROGRESS, {"id": str(running.id)})
        assert [await _next_done(ws) for _ in range(3)] == [0, 1, 2]
        await publish_task(container.adapters, await _progress(running, 10, TaskState.SUCCEEDED))
        final = (await receive(ws, timeout=2))["payload"]["data"]["taskProgress"]
        assert (final["state"], final["progress"]["done"]) == ("SUCCEEDED", 10)
        assert (await receive(ws, timeout=2)) == {"id": "1", "type": "complete"}
    finally:
        await ws.close()


async def test_one_event_runs_each_distinct_selection_once_for_all_its_subscribers(container, monkeypatch) -> None:
    """A thousand subscribers of a task must not run the same selection a thousand times: per
    event, each (document, variables, role) executes once and the others get its result."""
    from dataclasses import replace

    from domain.models import Progress
    from domain.tasks import publish_task
    from graphql_api.strawberry_compat import StrawberryExecutionContext

    adapters = container.adapters
    task = await _running_task(container)
    executions: list[object] = []
    original = StrawberryExecutionContext.execute_operation

    def counted(self, *args, **kwargs):
        executions.append(self.root_value)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StrawberryExecutionContext, "execute_operation", counted)

    small = "subscription($id: ID!) { taskProgress(id: $id) { progress { done } } }"
    wide = "subscription($id: ID!) { taskProgress(id: $id) { state progress { done total message } } }"
    streams = []
    for document in (small, small, small, wide, wide):
        streams.append((document, await _subscribed(container, document, task)))
    firsts = [await anext(stream) for _, stream in streams]  # each reads the task itself
    assert [f.data["taskProgress"]["progress"]["done"] for f in firsts] == [0] * 5
    executions.clear()

    await publish_task(adapters, replace(task, progress=Progress(3, 10, "3/10")))
    results = [await asyncio.wait_for(anext(stream), 2) for _, stream in streams]

    assert [r.errors for r in results] == [None] * 5
    assert [r.data for r in results[:3]] == [{"taskProgress": {"progress": {"done": 3}}}] * 3
    assert [r.data for r in results[3:]] == [
        {"taskProgress": {"state": "RUNNING", "progress": {"done": 3, "total": 10, "message": "3/10"}}}
    ] * 2
    assert len(executions) == 2  # one per distinct document, not one per subscriber
    for _, stream in streams:
        await stream.aclose()


async def test_a_long_lived_subscription_keeps_nothing_per_event(container) -> None:
    """A subscription stays open for hours: its events must not leave anything behind. With
    graphql-core's per-event executors sharing the subscription's memo of collected subfields,
    each event left 2-5 KB in it (the API's RSS grew ~1.9 MB/min under bench/soak.py)."""
    import gc
    import tracemalloc
    from dataclasses import replace

    from domain.models import Progress
    from domain.tasks import publish_task
    from graphql_api.fanout import MAX_SHARED_EVENTS

    task = await _running_task(container)
    stream = await _subscribed(container, PROGRESS, task)

    async def events(numbers: range) -> None:
        for done in numbers:
            await publish_task(container.adapters, replace(task, progress=Progress(done, 1000, f"{done}/1000")))
            result = await asyncio.wait_for(anext(stream), 2)
            assert result.errors is None and result.data["taskProgress"]["progress"]["done"] == done

    graphql_code = [tracemalloc.Filter(True, "*/graphql/*")]  # what graphql-core allocated and still holds
    tracemalloc.start()  # from the start: what is freed later must be traced when made
    try:
        await anext(stream)
        # By now whatever is made once per subscription is made, and fanout keeps the results
        # of the last MAX_SHARED_EVENTS events (for other subscribers): each new one replaces one.
        warm = MAX_SHARED_EVENTS + 20
        await events(range(1, warm))
        gc.collect()
        before = tracemalloc.take_snapshot().filter_traces(graphql_code)
        await events(range(warm, warm + 200))
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(graphql_code)
    finally:
        tracemalloc.stop()
        await stream.aclose()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 20_000, f"200 events left {grown} bytes behind"


async def _subscribed(container, document: str, task):
    """A viewer's subscription to ``document`` about ``task``, executed in-process (no WebSocket)."""
    from domain.auth import Role
    from graphql_api.context import Context
    from graphql_api.schema import schema

    class Socket:
        scope: ClassVar[dict[str, str]] = {"type": "websocket"}
        headers: ClassVar[dict[str, str]] = {}

    context = Context(request=Socket(), response=None, container=container, request_id="t", role=Role.VIEWER)
    return await schema.subscribe(document, variable_values={"id": str(task.id)}, context_value=context)


async def _running_task(container, done: int = 0):
    from domain.models import Progress, Task, TaskKind, TaskState

    adapters = container.adapters
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.add(Task(kind=TaskKind.ANALYZE, state=TaskState.RUNNING, attempts=1,
                                        created_at=adapters.clock.now(), progress=Progress(done, 10, "")))
        await uow.commit()
    return task


async def _progress(task, done: int, state=None):
    from dataclasses import replace

    from domain.models import Progress

    changes = {"progress": Progress(done, 10, f"{done}/10")}
    if state is not None:
        changes["state"] = state
    return replace(task, **changes)


async def _next_done(ws: ClientConnection, op_id: str = "1") -> int:
    message = await receive(ws, timeout=2)
    assert message["type"] == "next" and message["id"] == op_id, message
    return message["payload"]["data"]["taskProgress"]["progress"]["done"]


async def test_subscribers_of_the_same_progress_share_one_feed(server: str, tokens: dict, container) -> None:
    """Same document, variables and role: one running subscription feeds every connection; a
    member joining later starts from the current state, and one leaving does not end the rest."""
    from domain.tasks import publish_task
    from graphql_api.multiplex import MultiplexingHandler

    task = await _running_task(container)
    variables = {"id": str(task.id)}
    first, second = [await open_ws(server, {"Authorization": f"Bearer {tokens['viewer']}"}) for _ in range(2)]
    try:
        for ws in (first, second):
            assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(first, "1", PROGRESS, variables)
        assert await _next_done(first) == 0
        await publish_task(container.adapters, await _progress(task, 4))
        assert await _next_done(first) == 4

        await subscribe(second, "1", PROGRESS, variables)
        assert await _next_done(second) == 4  # the feed's latest item: the current state
        assert len(MultiplexingHandler.feeds) == 1

        await publish_task(container.adapters, await _progress(task, 7))
        assert [await _next_done(first), await _next_done(second)] == [7, 7]

        await first.send(json.dumps({"id": "1", "type": "complete"}))  # one member leaves
        await publish_task(container.adapters, await _progress(task, 9))
        assert await _next_done(second) == 9
        assert len(MultiplexingHandler.feeds) == 1

        from domain.models import TaskState

        await publish_task(container.adapters, await _progress(task, 10, TaskState.SUCCEEDED))
        assert await _next_done(second) == 10
        assert await receive(second, timeout=2) == {"id": "1", "type": "complete"}
        await asyncio.sleep(0.05)
        assert MultiplexingHandler.feeds == {}  # the stream ended: nothing keeps running
    finally:
        await first.close()
        await second.close()


async def test_the_feed_stops_when_its_last_member_leaves(server: str, tokens: dict, container) -> None:
    from graphql_api.multiplex import MultiplexingHandler

    task = await _running_task(container)
    ws = await open_ws(server, {"Authorization": f"Bearer {tokens['viewer']}"})
    assert (await receive(ws))["type"] == "connection_ack"
    await subscribe(ws, "1", PROGRESS, {"id": str(task.id)})
    assert await _next_done(ws) == 0
    [feed] = MultiplexingHandler.feeds.values()
    await ws.close()  # gone without a word: the connection's cleanup detaches the member
    for _ in range(200):
        if feed.task.done():
            break
        await asyncio.sleep(0.01)
    assert feed.task.done() and MultiplexingHandler.feeds == {}


async def test_different_roles_and_documents_get_their_own_feeds(server: str, tokens: dict, container) -> None:
    """What a feed yields is checked and shaped for its caller: a different role or selection
    never joins it."""
    from domain.tasks import publish_task
    from graphql_api.multiplex import MultiplexingHandler

    task = await _running_task(container)
    variables = {"id": str(task.id)}
    other = "subscription($id: ID!) { taskProgress(id: $id) { state progress { done } } }"
    sockets = [await open_ws(server, {"Authorization": f"Bearer {tokens[role]}"}) for role in ("viewer", "admin", "viewer")]
    try:
        for ws in sockets:
            assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(sockets[0], "1", PROGRESS, variables)
        await subscribe(sockets[1], "1", PROGRESS, variables)
        await subscribe(sockets[2], "1", other, variables)
        assert [await _next_done(ws) for ws in sockets] == [0, 0, 0]
        assert len(MultiplexingHandler.feeds) == 3
        await publish_task(container.adapters, await _progress(task, 5))
        assert [await _next_done(ws) for ws in sockets] == [5, 5, 5]
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_bad_shared_document_is_refused_like_any_other(server: str, tokens: dict) -> None:
    ws = await open_ws(server, {"Authorization": f"Bearer {tokens['viewer']}"})
    try:
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(ws, "1", "subscription { taskProgress(id: 1) { nope } }")
        message = await receive(ws)
        assert message["type"] == "error" and message["id"] == "1"
        assert "nope" in message["payload"][0]["message"]
    finally:
        await ws.close()


async def test_a_client_gone_mid_send_is_not_logged_as_a_fault() -> None:
    """A send to a closed socket raises WebSocketDisconnected: the subscription simply ends.
    Anything else is still reported with its traceback."""
    from unittest.mock import Mock

    from strawberry.http.exceptions import WebSocketDisconnected

    from graphql_api.multiplex import MultiplexingHandler

    handler = MultiplexingHandler.__new__(MultiplexingHandler)  # only what the method reads
    handler.context, handler.task_logger = None, Mock()
    await handler.handle_task_exception(WebSocketDisconnected())
    handler.task_logger.exception.assert_not_called()
    await handler.handle_task_exception(RuntimeError("boom"))
    handler.task_logger.exception.assert_called_once()
