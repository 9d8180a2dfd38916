"""Live subscriptions across a real Redis restart (a private redis-server, stopped for real):
``taskEvents`` keeps its place and sends what changed meanwhile, ``commentMatched`` ends with
a coded error the client can act on, and neither goes silent."""

from __future__ import annotations

import asyncio
from pathlib import Path

from domain.auth import create_api_token
from domain.models import TaskKind
from domain.tasks import start_task
from graphql_api.ids import NodeType, global_id
from tests.e2e.graphql_support import make_settings, serve_app, start_container
from tests.e2e.test_graphql_subscriptions import open_ws, receive, subscribe
from tests.faults import private_redis  # noqa: F401  (fixture)

EVENTS = "subscription { taskEvents { id kind state } }"
MATCHED = "subscription { commentMatched { id } }"


async def test_task_events_catch_up_and_comment_matched_says_it_was_interrupted(private_redis, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url=private_redis.url(), redis_prefix="outage:")
    container = await start_container(settings)
    token, _ = await create_api_token(container.adapters.uow_factory, "viewer", "viewer")
    try:
        async with serve_app(container) as base:
            ws = await open_ws(base, {"Authorization": f"Bearer {token}"})
            assert (await receive(ws))["type"] == "connection_ack"
            await subscribe(ws, "events", EVENTS)
            await subscribe(ws, "matched", MATCHED)
            await asyncio.sleep(0.5)  # both subscribed in Redis

            await private_redis.stop()
            # A change nobody can hear of live: the task is stored, its event dropped, its job
            # deferred (and the mutation still answers the task).
            task = await start_task(container.adapters, TaskKind.ANALYZE, {})
            await asyncio.sleep(1)
            await private_redis.start()  # empty

            seen: dict[str, dict] = {}
            while set(seen) != {"events", "matched"}:
                message = await receive(ws, timeout=15)
                seen.setdefault(message["id"], message)
            caught_up = seen["events"]
            assert caught_up["type"] == "next"
            assert caught_up["payload"]["data"]["taskEvents"] == {"id": global_id(NodeType.TASK, task.id), "kind": "ANALYZE", "state": "QUEUED"}
            interrupted = seen["matched"]
            assert interrupted["type"] in ("next", "error"), interrupted
            errors = interrupted["payload"]["errors"] if interrupted["type"] == "next" else interrupted["payload"]
            assert errors[0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", errors

            # taskEvents is live again: a change made now arrives as an event.
            await asyncio.sleep(1.2)  # the publisher's pause after its failures has passed
            again = await start_task(container.adapters, TaskKind.ANALYZE, {})
            while True:
                message = await receive(ws, timeout=15)
                if message["id"] == "events" and message["payload"]["data"]["taskEvents"]["id"] == global_id(NodeType.TASK, again.id):
                    break
            await ws.close()
    finally:
        await container.aclose()
