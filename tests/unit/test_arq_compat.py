"""``jobs/arq_compat.py`` overrides a private ARQ method; these fail loudly when an upgrade
moves it, instead of the worker silently losing its outage protection."""

from __future__ import annotations

import asyncio

from arq.worker import Worker, func
from redis.exceptions import ConnectionError as RedisConnectionError

from jobs.arq_compat import QUEUE_BACK, ResilientWorker


class _Queue:
    """As much of ARQ's Redis pool as ``Worker.main`` touches in burst mode: the queue's length."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths

    async def zcard(self, name: str) -> int:
        return self.lengths.pop(0)


async def test_arqs_main_loop_polls_through_the_override_and_outlives_a_redis_error(monkeypatch) -> None:
    """ARQ's own ``Worker.main``, not our call: should it stop polling through
    ``_poll_iteration`` (or that method go), the Redis error ends the loop or nothing polls."""
    calls = []

    async def poll(self) -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RedisConnectionError("Connection refused")

    async def no_server_info(pool, log) -> None:
        return None

    monkeypatch.setattr(Worker, "_poll_iteration", poll)
    monkeypatch.setattr("arq.worker.log_redis_info", no_server_info)
    monkeypatch.setattr("jobs.arq_compat.POLL_RETRY_FIRST", 0.01)

    async def job(ctx) -> None:
        return None

    worker = ResilientWorker(
        functions=[func(job, name="job")],
        queue_name="q",
        redis_pool=_Queue([1, 0]),  # type: ignore[arg-type]
        burst=True,
        poll_delay=0,
        handle_signals=False,
    )
    await asyncio.wait_for(worker.main(), 5)  # burst mode: returns once the queue is empty
    assert calls == [0, 1] and worker._redis_failures == 0


async def test_a_redis_error_in_one_poll_is_survived_and_the_next_poll_runs(monkeypatch) -> None:
    calls = []

    async def poll(self) -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(Worker, "_poll_iteration", poll)
    monkeypatch.setattr("jobs.arq_compat.POLL_RETRY_FIRST", 0.01)
    worker = object.__new__(ResilientWorker)  # no Redis needed: only the override is exercised
    worker.tasks = {}
    await worker._poll_iteration()  # would have raised and ended ARQ's main loop
    assert worker._redis_failures == 1
    await asyncio.wait_for(worker._poll_iteration(), 1)
    assert calls == [0, 1] and worker._redis_failures == 0


async def test_the_first_poll_that_works_again_wakes_the_recovery_loop(monkeypatch) -> None:
    """The worker's recovery loop waits on the context's QUEUE_BACK event to re-offer queued
    tasks whose jobs a Redis restart lost (entrypoints/worker.py)."""
    failing = [True]

    async def poll(self) -> None:
        if failing[0]:
            raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(Worker, "_poll_iteration", poll)
    monkeypatch.setattr("jobs.arq_compat.POLL_RETRY_FIRST", 0.01)
    worker = object.__new__(ResilientWorker)
    worker.tasks = {}
    worker.ctx = {QUEUE_BACK: asyncio.Event()}
    await worker._poll_iteration()
    assert not worker.ctx[QUEUE_BACK].is_set()  # still down
    failing[0] = False
    await worker._poll_iteration()
    assert worker.ctx[QUEUE_BACK].is_set()
