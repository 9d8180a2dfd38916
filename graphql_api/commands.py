"""Small use cases the API needs that the domain does not offer yet.

They follow the domain's rules (``domain.monitoring.validate_monitoring``, ``NotFound``...)
and touch storage only through the unit of work, so they can move to ``domain/groups.py`` and
``domain/review.py`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.errors import InvalidInput, NotFound
from domain.models import Group
from domain.monitoring import next_run, validate_monitoring
from domain.ports import Adapters
from domain.stats import invalidate_stats

MAX_BULK = 1000  # ids per setCommentState call


class _Keep:
    """Marks a setting the caller did not mention (None means "clear")."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


@dataclass
class GroupChanges:
    active: bool | _Keep = KEEP
    max_posts: int | None | _Keep = KEEP
    since: datetime | None | _Keep = KEEP
    monitor_enabled: bool | _Keep = KEEP
    monitor_interval_minutes: int | _Keep = KEEP
    monitor_priority: int | _Keep = KEEP


async def update_group(adapters: Adapters, group_id: int, changes: GroupChanges) -> Group:
    if isinstance(changes.max_posts, int) and changes.max_posts < 1:
        raise InvalidInput("maxPosts must be at least 1", field="maxPosts")
    for name in ("active", "monitor_enabled", "monitor_interval_minutes", "monitor_priority"):
        if getattr(changes, name) is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
    validate_monitoring(
        None if isinstance(changes.monitor_interval_minutes, _Keep) else changes.monitor_interval_minutes,
        None if isinstance(changes.monitor_priority, _Keep) else changes.monitor_priority,
    )
    async with adapters.uow_factory() as uow:
        group = await uow.groups.get(group_id)
        if group is None:
            raise NotFound(f"Group {group_id} not found", field="id")
        was_monitored = group.monitor_enabled and group.active
        for name, value in vars(changes).items():
            if not isinstance(value, _Keep):
                setattr(group, name, value)
        monitored = group.monitor_enabled and group.active
        if monitored and (not was_monitored or group.next_run_at is None):
            # Just switched on: the first automatic run is due now, not one interval later.
            group.next_run_at = adapters.clock.now()
        elif monitored and not isinstance(changes.monitor_interval_minutes, _Keep) and group.last_run_at:
            group.next_run_at = next_run(group, group.last_run_at)
        await uow.groups.save(group)
        await uow.commit()
        return group


async def remove_group(adapters: Adapters, group_id: int) -> None:
    """Forget a community and everything collected from it."""
    async with adapters.uow_factory() as uow:
        if await uow.groups.get(group_id) is None:
            raise NotFound(f"Group {group_id} not found", field="id")
        await uow.groups.remove(group_id)
        await uow.commit()
    await invalidate_stats(adapters.cache)  # its comments no longer count


async def set_comment_state(
    adapters: Adapters, comment_ids: Sequence[int], *, viewed: bool | None, archived: bool | None
) -> list[int]:
    """Mark comments viewed / archived in bulk; returns the ids that exist."""
    if not comment_ids:
        raise InvalidInput("Give at least one comment id", field="ids")
    if len(comment_ids) > MAX_BULK:
        raise InvalidInput(f"At most {MAX_BULK} comments at once", field="ids")
    if viewed is None and archived is None:
        raise InvalidInput("Set viewed, archived or both", field="viewed")
    ids = list(dict.fromkeys(comment_ids))
    async with adapters.uow_factory() as uow:
        found = await uow.comments.set_state(ids, viewed=viewed, archived=archived)
        await uow.commit()
    missing = sorted(set(ids) - set(found))
    if missing and not found:
        raise NotFound(f"No comment with id {', '.join(map(str, missing[:10]))}", field="ids")
    return [i for i in ids if i in set(found)]
