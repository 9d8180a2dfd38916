"""Riding out the faults real infrastructure has: which errors are transient, and how to wait.

A transient error says nothing about the work itself: ``Unavailable`` (the database or Redis
is down, restarting or dropped a connection; a deadlock or a serialization failure) or
``VkUnavailable`` (VK kept failing after the gateway's own retries). The same step succeeds
once the dependency is back, so it is retried where it happened, with exponential backoff and
full jitter, for a bounded time. Only then does the error reach a person, naming what was down.

The backoff is capped low on purpose: after a dependency returns, work resumes within
``RETRY_MAX`` seconds, and an attempt every few seconds costs nothing while it is down.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from domain.errors import Unavailable, VkUnavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")

RETRY_FIRST = 0.25  # seconds: a dropped connection usually works again at once (the pool reconnects)
RETRY_MAX = 5.0  # seconds between attempts at most: the resume delay once the dependency is back
STEP_BUDGET = 120.0  # seconds one step (a write batch, a lease change) keeps trying before giving up

TRANSIENT = (Unavailable, VkUnavailable)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT)


def backoff_delay(attempt: int, *, first: float = RETRY_FIRST, cap: float = RETRY_MAX) -> float:
    """Full jitter: uniform in [0, min(cap, first * 2**(attempt - 1))]."""
    return random.uniform(0, min(cap, first * 2 ** max(0, attempt - 1)))


async def retry_transient(
    step: Callable[[], Awaitable[T]], *, what: str, budget: float = STEP_BUDGET, **log_fields: object
) -> T:
    """``step()``, tried again after transient errors until ``budget`` seconds have passed;
    then the last error is raised. Only for idempotent steps (upserts, conditional updates)."""
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        try:
            return await step()
        except TRANSIENT as e:
            attempt += 1
            delay = backoff_delay(attempt)
            if time.monotonic() + delay > deadline:
                raise
            log.warning("retrying", step=what, attempt=attempt, delay=round(delay, 2), error=e.message, **log_fields)
            await asyncio.sleep(delay)
