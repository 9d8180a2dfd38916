"""Use cases for communities: add one from whatever reference a user pastes, refresh, change
its collection and monitoring settings, remove."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from domain.errors import InvalidInput, InvalidReference, NotFound, VkError, VkNotFound
from domain.models import UNSET, Group, Unset
from domain.monitoring import next_run, validate_monitoring
from domain.ports import Adapters, UnitOfWorkFactory, VkGateway
from domain.stats import invalidate_stats

# VK ids in ASCII digits only ('③' passes str.isdigit() but not int()), at most 18 of them
# (every VK id fits 64 bits; a longer number is no community).
_VK_ID = re.compile(r"-?([0-9]{1,18})")
_ID_FORMS = re.compile(r"(?:club|public|event)([0-9]{1,18})")
_SCREEN_NAME = re.compile(r"^[A-Za-z0-9_.]{2,64}$")
_VK_HOSTS = {"vk.com", "www.vk.com", "m.vk.com", "vk.ru", "www.vk.ru", "m.vk.ru", "vkontakte.ru"}


@dataclass(frozen=True)
class GroupRef:
    """A parsed reference: exactly one of ``vk_id`` and ``screen_name`` is set."""

    vk_id: int | None = None
    screen_name: str | None = None


def parse_group_ref(ref: str) -> GroupRef:
    """Understand ``123``, ``-123``, ``club123``, ``public123``, ``name`` and VK URLs of them."""
    text = ref.strip()
    if not text:
        raise InvalidReference("Group reference is empty", field="ref")
    if "/" in text or text.lower().startswith(("vk.com", "vk.ru", "m.vk.com", "www.vk.com")):
        text = _path_of_url(text, ref)
    if m := _VK_ID.fullmatch(text):
        vk_id = int(m.group(1))
        if vk_id == 0:
            raise InvalidReference(f"'{ref}' is not a valid group id", field="ref")
        return GroupRef(vk_id=vk_id)
    if m := _ID_FORMS.fullmatch(text.lower()):
        return GroupRef(vk_id=int(m.group(1)))
    if _SCREEN_NAME.match(text):
        return GroupRef(screen_name=text.lower())
    raise InvalidReference(
        f"'{ref}' is not a VK community: use an id, a screen name or a vk.com link", field="ref"
    )


def _path_of_url(text: str, ref: str) -> str:
    url = text if "://" in text else "https://" + text
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidReference(f"'{ref}' is not a valid URL", field="ref") from None
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in _VK_HOSTS:
        raise InvalidReference(f"'{ref}' is not a vk.com link", field="ref")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 1:
        raise InvalidReference(f"'{ref}' does not point at a community", field="ref")
    return segments[0]


async def resolve_group(vk: VkGateway, ref: str) -> Group:
    """Ask VK which community a reference names; domain errors for anything else."""
    parsed = parse_group_ref(ref)
    vk_id = parsed.vk_id
    if vk_id is None:
        assert parsed.screen_name is not None
        resolved = await vk.resolve_screen_name(parsed.screen_name)
        if resolved is None:
            raise InvalidReference(f"VK knows no community named '{parsed.screen_name}'", field="ref")
        kind, object_id = resolved
        if kind not in ("group", "page", "event"):
            raise InvalidReference(f"'{parsed.screen_name}' is a {kind}, not a community", field="ref")
        vk_id = object_id
    try:
        groups = await vk.get_groups([vk_id])
    except VkNotFound:
        groups = []
    except VkError as e:
        if e.vk_code == 100:  # VK's "invalid group id"
            groups = []
        else:
            raise
    if not groups:
        raise InvalidReference(f"VK has no community with id {vk_id}", field="ref")
    return groups[0]


async def add_group(uow_factory: UnitOfWorkFactory, vk: VkGateway, ref: str) -> Group:
    """Add a community, or return it unchanged-but-refreshed when it is already tracked."""
    fresh = await resolve_group(vk, ref)
    async with uow_factory() as uow:
        existing = await uow.groups.get_by_vk_id(fresh.vk_id)
        if existing is not None:
            _copy_vk_fields(fresh, existing)
            await uow.groups.save(existing)
            await uow.commit()
            return existing
        group = await uow.groups.add(fresh)
        await uow.commit()
        return group


async def refresh_group(uow_factory: UnitOfWorkFactory, vk: VkGateway, group_id: int) -> Group:
    async with uow_factory() as uow:
        group = await uow.groups.get(group_id)
        if group is None:
            raise NotFound(f"Group {group_id} not found", field="id")
    fresh = next(iter(await vk.get_groups([group.vk_id])), None)
    if fresh is None:
        raise VkNotFound(f"VK no longer has community {group.vk_id}")
    async with uow_factory() as uow:
        group = await uow.groups.get(group_id)
        if group is None:
            raise NotFound(f"Group {group_id} not found", field="id")
        _copy_vk_fields(fresh, group)
        await uow.groups.save(group)
        await uow.commit()
        return group


@dataclass(frozen=True)
class GroupChanges:
    """Settings to change; ``UNSET`` leaves one as it is, None clears it where that means something."""

    active: bool | Unset = UNSET
    max_posts: int | Unset | None = UNSET
    since: datetime | Unset | None = UNSET
    monitor_enabled: bool | Unset = UNSET
    monitor_interval_minutes: int | Unset = UNSET
    monitor_priority: int | Unset = UNSET


_NOT_NULL = ("active", "monitor_enabled", "monitor_interval_minutes", "monitor_priority")


async def update_group(adapters: Adapters, group_id: int, changes: GroupChanges) -> Group:
    """Change a community's settings. Monitoring switched on (or on for a community switched
    active) is due at once, not one interval later; a new interval counts from the last run."""
    if isinstance(changes.max_posts, int) and changes.max_posts < 1:
        raise InvalidInput("maxPosts must be at least 1", field="maxPosts")
    for name in _NOT_NULL:
        if getattr(changes, name) is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
    interval, priority = changes.monitor_interval_minutes, changes.monitor_priority
    validate_monitoring(
        None if isinstance(interval, Unset) else interval, None if isinstance(priority, Unset) else priority
    )
    async with adapters.uow_factory() as uow:
        group = await uow.groups.get(group_id)
        if group is None:
            raise NotFound(f"Group {group_id} not found", field="id")
        was_monitored = group.monitor_enabled and group.active
        for field in dataclasses.fields(changes):
            value = getattr(changes, field.name)
            if not isinstance(value, Unset):
                setattr(group, field.name, value)
        monitored = group.monitor_enabled and group.active
        if monitored and (not was_monitored or group.next_run_at is None):
            group.next_run_at = adapters.clock.now()
        elif monitored and not isinstance(interval, Unset) and group.last_run_at:
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


def _copy_vk_fields(src: Group, dst: Group) -> None:
    for name in ("screen_name", "name", "is_closed", "members_count", "photo_url", "description", "deactivated"):
        setattr(dst, name, getattr(src, name))
