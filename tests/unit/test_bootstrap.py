"""The composition root owns the loops it starts: closing the container stops them first, then
closes the adapters in the reverse of their building, once."""

from __future__ import annotations

import asyncio
from typing import Any

from bootstrap import Container, start_loops
from infrastructure.settings import Settings


def _container(settings: Any = None, closers: list[Any] | None = None) -> Container:
    return Container(
        settings=settings, adapters=None, read_model=None, engine=None, secret_key=b"",  # type: ignore[arg-type]
        closers=closers or [],
    )


async def test_closing_stops_the_loops_before_the_adapters_and_a_second_close_does_nothing() -> None:
    order: list[str] = []

    async def loop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            order.append("loop stopped")

    async def close_engine() -> None:
        order.append("engine closed")

    async def close_redis() -> None:
        order.append("redis closed")

    container = _container(closers=[close_engine, close_redis])
    container.loops.append(asyncio.create_task(loop()))
    await asyncio.sleep(0)  # the loop is running
    await container.aclose()
    await container.aclose()
    assert order == ["loop stopped", "redis closed", "engine closed"]


async def test_each_process_starts_the_loops_its_mode_needs() -> None:
    settings = Settings(_env_file=None, vk_sandbox=True, redis_url=None)  # type: ignore[call-arg]
    embedded, worker, api_with_workers = _container(settings), _container(settings), _container(settings)
    start_loops(embedded, recover=True, schedule=True)
    start_loops(worker, recover=True, schedule=False, wake=asyncio.Event())
    start_loops(api_with_workers, recover=False, schedule=False)
    loops = embedded.loops + worker.loops + api_with_workers.loops
    for loop in loops:  # before any of them runs: these containers have no adapters
        loop.cancel()
    for container in (embedded, worker, api_with_workers):
        await container.aclose()
    assert [t.get_name() for t in loops] == [
        # embedded: this process runs the tasks and delivers the alerts
        "release-free-memory", "watch-tasks", "scheduler", "alert-delivery",
        "release-free-memory", "watch-tasks", "alert-delivery",  # a worker: ARQ's cron runs the scheduler
        "release-free-memory",  # the API beside workers
    ]
    assert all(t.cancelled() for t in loops)
