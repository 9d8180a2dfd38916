"""``Task.waitingUntil`` over GraphQL: a task waiting for VK shows it in queries and in both
subscriptions, and its live stream goes RUNNING → QUEUED (waiting) → RUNNING → SUCCEEDED:
the wait is a step forward, not a snapshot older than the run before it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from domain.models import Progress, Task, TaskKind, TaskState
from domain.tasks import publish_task, waiting_message
from tests.e2e.graphql_support import container, server, tokens  # noqa: F401
from tests.e2e.test_graphql_subscriptions import gql, open_ws, receive, subscribe

PROGRESS = """subscription($id: ID!) { taskProgress(id: $id) {
  state waitingUntil attempts progress { done message } } }"""
EVENTS = "subscription { taskEvents { id state waitingUntil } }"


async def test_a_task_that_waits_for_vk_streams_its_wait_and_its_resume(server: str, tokens: dict, container) -> None:
    adapters = container.adapters
    now = adapters.clock.now()
    async with adapters.uow_factory() as uow:
        running = await uow.tasks.add(Task(kind=TaskKind.PARSE, state=TaskState.RUNNING, attempts=1,
                                           created_at=now, progress=Progress(3, 10, "3/10 posts")))
        await uow.commit()
    until = now + timedelta(hours=2)
    message = waiting_message(until, 29, now)
    # The snapshots the runner publishes: the wait (the lease given up), the resume, the end.
    waiting = replace(running, state=TaskState.QUEUED, waiting_until=until, waits=1,
                      progress=Progress(3, 10, message))
    resumed = replace(waiting, state=TaskState.RUNNING, waiting_until=None, progress=Progress(4, 10, "4/10 posts"))
    done = replace(resumed, state=TaskState.SUCCEEDED, progress=Progress(10, 10, "10/10 posts"))

    ws = await open_ws(server, {"Authorization": f"Bearer {tokens['viewer']}"})
    try:
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(ws, "events", EVENTS)
        await subscribe(ws, "progress", PROGRESS, {"id": str(running.id)})
        first = (await receive(ws))["payload"]["data"]["taskProgress"]
        assert (first["state"], first["waitingUntil"]) == ("RUNNING", None)
        await asyncio.sleep(0.2)  # taskEvents is live
        for snapshot in (waiting, resumed, done):
            await publish_task(adapters, snapshot)
        progress, events = [], []
        while len(progress) < 3 or len(events) < 3:
            message_ = await receive(ws)
            if message_["type"] == "complete":
                continue
            data = message_["payload"]["data"]
            (progress.append(data["taskProgress"]) if message_["id"] == "progress" else events.append(data["taskEvents"]))
    finally:
        await ws.close()

    assert [(p["state"], p["waitingUntil"] is not None) for p in progress] == [
        ("QUEUED", True), ("RUNNING", False), ("SUCCEEDED", False)]
    assert progress[0]["progress"] == {"done": 3, "message": message} and progress[0]["attempts"] == 1
    assert [(e["state"], e["waitingUntil"] is not None) for e in events] == [
        ("QUEUED", True), ("RUNNING", False), ("SUCCEEDED", False)]
    assert progress[0]["waitingUntil"].startswith(until.isoformat()[:19])

    # A query reads it from the database alike.
    async with adapters.uow_factory() as uow:
        claimed = await uow.tasks.claim(running.id, worker_id="w1", now=now, stale_before=now)
        await uow.tasks.wait(running.id, worker_id="w1", now=now, until=until, progress=waiting.progress)
        await uow.commit()
    assert claimed is not None
    query = "query($id: ID!) { task(id: $id) { state waitingUntil } tasks(first: 5) { edges { node { waitingUntil } } } }"
    data = await gql(server, tokens["viewer"], query, {"id": str(running.id)})
    assert data["task"]["state"] == "QUEUED" and data["task"]["waitingUntil"].startswith(until.isoformat()[:19])
    assert [e["node"]["waitingUntil"] for e in data["tasks"]["edges"]] == [data["task"]["waitingUntil"]]
