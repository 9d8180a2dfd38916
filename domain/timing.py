"""How long the task machinery waits for what (``domain.tasks``): one value, ``TaskTiming``.

It is carried by ``Adapters.task_timing`` and read where it is used (the runner, its
supervisor and progress reporter, the recovery loop), so the composition root sets it from
settings and a test passes ``dataclasses.replace(TaskTiming(), lease=...)``. Its own module
because ``domain.ports`` carries it and ``domain.tasks`` imports the ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from domain.models import TaskKind
from domain.resilience import RETRY_FIRST, RETRY_MAX


def _timeouts() -> Mapping[TaskKind, timedelta]:
    # Per kind: a parse of a big community at VK's rate takes hours; the others are local work.
    return MappingProxyType({
        TaskKind.PARSE: timedelta(hours=6),
        TaskKind.ANALYZE: timedelta(hours=1),
        TaskKind.EXPORT: timedelta(minutes=30),
        TaskKind.INDEX_RULES: timedelta(hours=1),
    })


@dataclass(frozen=True)
class TaskTiming:
    progress_interval: float = 0.25  # seconds between progress writes/events of one task
    cancel_poll_interval: float = 1.0  # seconds between a running task's checks for a cancel request
    # A runner renews its lease this often even while it reports no progress (waiting on VK);
    # progress writes renew it too. Five beats fit in a lease: a slow database or a busy event
    # loop can miss several before a live runner looks dead.
    heartbeat_interval: timedelta = timedelta(seconds=4)
    # A RUNNING task not heartbeated for this long is orphaned, and taken over by another worker.
    # It bounds the takeover after a kill -9 (issue #19: within 40 s): the lapse is noticed at once
    # (the recovery loop wakes when it happens), so a takeover takes ``lease`` plus about a second.
    # Workers' clocks must agree to well within it (NTP does).
    lease: timedelta = timedelta(seconds=20)
    # A QUEUED task this old may have lost its job (Redis restarted empty, or was down when the
    # task was started): enqueue it again. Cheap and safe: the job id of an attempt is fixed, so a
    # job still waiting in the queue is not added twice.
    queued_grace: timedelta = timedelta(seconds=10)
    recovery_interval: float = 5.0  # seconds between recovery passes at most: a lost job is found within this
    lapse_margin: float = 0.2  # seconds past a lease's lapse at which the recovery loop looks (clock steps, rounding)
    # A RUNNING task whose progress did not move this long is stuck (VKCP_TASK_STALL_SECONDS).
    stall_after: timedelta = timedelta(minutes=10)
    # (said in the API's Task.stalls) found stuck this often, a task ends FAILED: running it again did not help
    max_stalls: int = 3
    transient_budget: timedelta = timedelta(minutes=30)  # one stretch of dependency outage a run waits through
    # A run's backoff after a transient error (``domain.resilience.backoff_delay``), in seconds.
    retry_first: float = RETRY_FIRST
    retry_max: float = RETRY_MAX
    timeouts: Mapping[TaskKind, timedelta] = field(default_factory=_timeouts)
    default_timeout: timedelta = timedelta(hours=1)  # a kind ``timeouts`` does not name
    # A waiting task is enqueued for this long after its tokens come back: the gateway times a
    # token's rest on the monotonic clock, the queue on the wall clock, and a run resumed a moment
    # early would meet the same rest again (costing nothing, but waiting once more).
    resume_margin: timedelta = timedelta(seconds=1)

    def timeout(self, kind: TaskKind) -> timedelta:
        return self.timeouts.get(kind, self.default_timeout)
