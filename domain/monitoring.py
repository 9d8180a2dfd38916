"""Monitoring: the one scheduler that re-collects communities whose interval has come round.

It runs every minute (an ARQ cron job with Redis, an asyncio loop in the embedded mode). Due
groups are taken by priority; a group whose parse is still queued or running is not started
again (``start_parse`` returns the existing task), and ``next_run_at`` moves on either way, so
two runs of one community never overlap and a slow run is not followed by a pile-up. While
every VK token rests, a run waits (QUEUED with ``waiting_until``, see ``domain.tasks``) rather
than fails; it is still the group's active parse, so runs due meanwhile return it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from domain.errors import DomainError, InvalidInput
from domain.models import Group, Task
from domain.ports import Adapters
from domain.tasks import start_parse

log = structlog.get_logger(__name__)

MIN_INTERVAL, MAX_INTERVAL = 1, 1440
MIN_PRIORITY, MAX_PRIORITY = 1, 10


def validate_monitoring(interval_minutes: int | None, priority: int | None) -> None:
    if interval_minutes is not None and not MIN_INTERVAL <= interval_minutes <= MAX_INTERVAL:
        raise InvalidInput(
            f"intervalMinutes must be between {MIN_INTERVAL} and {MAX_INTERVAL}", field="monitoring.intervalMinutes"
        )
    if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidInput(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}", field="monitoring.priority")


def next_run(group: Group, now: datetime) -> datetime:
    # From the start of the minute: the scheduler ticks once a minute, a few seconds late at
    # most, so a 5-minute interval runs every 5 minutes rather than every 6.
    return now.replace(second=0, microsecond=0) + timedelta(minutes=group.monitor_interval_minutes)


async def schedule_due(adapters: Adapters, now: datetime | None = None) -> list[Task]:
    """Start a parse for every group that is due, highest priority first."""
    now = now or adapters.clock.now()
    async with adapters.uow_factory() as uow:
        due = await uow.groups.due_for_monitoring(now)
        for group in due:
            group.next_run_at = next_run(group, now)
            await uow.groups.save(group)
        await uow.commit()
    started: list[Task] = []
    for group in due:
        assert group.id is not None
        try:
            tasks = await start_parse(adapters, [group.id], priority=group.monitor_priority)
        except DomainError as e:
            log.warning("monitoring.start_failed", group_id=group.id, error=e.message)
            continue
        started.extend(tasks)
    if due:
        log.info("monitoring.scheduled", groups=[g.id for g in due])
    return started


async def scheduler_tick(adapters: Adapters) -> list[Task]:
    """What runs once a minute. (Tasks whose runner died or whose job was lost are the recovery
    loop's, ``domain.tasks.watch_tasks``, which runs every few seconds.)"""
    return await schedule_due(adapters)
