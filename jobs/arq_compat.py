"""The one place that leans on ARQ's internals: a worker whose poll loop survives Redis outages.

ARQ's ``Worker._poll_iteration`` (read the queue, start jobs, check aborts, heartbeat, cron)
lets any Redis error escape ``Worker.main``, which ends the worker: an idle worker exits with a
traceback when Redis restarts, and a busy one is left with its jobs running but no loop, so
nothing it finishes is recorded and nothing new starts. Here an iteration that meets a Redis
error is logged and tried again after a backoff, while the running jobs go on; the first
iteration that works again says so, and sets the context's ``QUEUE_BACK`` event (the
recovery loop re-offers the queued tasks whose jobs the outage may have lost).
``tests/unit/test_arq_compat.py`` fails loudly when an ARQ upgrade moves what this relies on.
"""

from __future__ import annotations

import asyncio

import structlog
from arq.worker import Worker

from infrastructure.redis_client import REDIS_ERRORS

log = structlog.get_logger(__name__)

POLL_RETRY_FIRST, POLL_RETRY_MAX = 0.2, 2.0  # seconds between poll attempts while Redis is down
QUEUE_BACK = "queue_back"  # the worker context's asyncio.Event, set when Redis answers again


class ResilientWorker(Worker):
    _redis_failures = 0

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_ERRORS as e:
            self._redis_failures += 1
            if self._redis_failures == 1:
                log.warning("worker.redis_unavailable", error=type(e).__name__, running_jobs=len(self.tasks))
            await asyncio.sleep(min(POLL_RETRY_MAX, POLL_RETRY_FIRST * 2 ** (self._redis_failures - 1)))
            return
        if self._redis_failures:
            log.info("worker.redis_available", failed_polls=self._redis_failures)
            self._redis_failures = 0
            back = (getattr(self, "ctx", None) or {}).get(QUEUE_BACK)
            if back is not None:
                back.set()
