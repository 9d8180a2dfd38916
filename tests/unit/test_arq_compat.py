"""``jobs/arq_compat.py`` overrides a private ARQ method; these fail loudly when an upgrade
moves it, instead of the worker silently losing its outage protection."""

from __future__ import annotations

import asyncio
import inspect

from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError

from jobs.arq_compat import QUEUE_BACK, ResilientWorker


def test_arq_still_polls_through_the_method_we_override() -> None:
    assert inspect.iscoroutinefunction(Worker._poll_iteration)
    assert "self._poll_iteration()" in inspect.getsource(Worker.main)


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
