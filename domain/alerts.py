"""Alerts: tell people when a keyword matches, and when collection is in trouble.

An ``AlertRule`` has a ``CommentFilter`` (the one Review and exports use), one or more channels
(URLs: ``http(s)://`` is a webhook signed per Standard Webhooks, any other scheme an Apprise
URL) and a mode:

- INSTANT: one message per matched comment;
- DIGEST: at most one message every ``digest_minutes``: how many matched, the first few, a link
  to the console's Review;
- THRESHOLD: one message when at least ``threshold_count`` comments matched within
  ``threshold_minutes`` (one per window); matches of a window that stays below are SKIPPED.

A system rule (``system_events`` given) ignores the filter and alerts operational events
(``SystemEvent``), checked once a minute by ``check_system_events``.

Delivery is an outbox: ``record_matched`` writes one PENDING row per (rule, channel, comment)
in the transaction that stores the comment's matches, unique, so a re-parse, a re-analysis, a
second worker or a retried job never alerts a comment twice. ``deliver_due`` (run by the
delivery loop of every worker, and of the embedded ``serve``) claims due rows under a lease,
sends, and records the outcome: retries back off exponentially with jitter for up to
``GIVE_UP_AFTER``, then FAILED. A message's id (the webhook-id) is fixed when its rows are
claimed, so a retry after a crash sends the same id and a receiver can dedupe on it. Each
channel is sent to on its own: one failing channel never delays the others. Per-channel rate
limits (``rate_limits_for``, spent through ``SendBudget``: shared by every worker when Redis is
configured) fold a burst beyond them into one digest message, never dropping it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog

from domain.alert_model import (
    CHANNEL_FAILING_AFTER,
    CLAIM_LIMIT,
    GIVE_UP_AFTER,
    SEND_TIMEOUT,
    AlertChannel,
    AlertComment,
    AlertMessage,
    AlertMode,
    AlertRule,
    Batch,
    DeliveryStats,
    InvalidChannel,
    LocalSendBudget,
    PendingDelivery,
    RuleInput,
    SendResult,
    SystemEvent,
    apply_changes,
    compose_message,
    compose_system_message,
    new_webhook_secret,
    next_attempt,
    plan_batches,
    scrub,
    test_message,
)
from domain.errors import DomainError, NotFound, Unavailable
from domain.models import DeliveryState, TaskState, Unset
from domain.ports import Adapters, UnitOfWork
from domain.queries import CommentFilter
from domain.vk import TokenStatus

log = structlog.get_logger(__name__)

# --- use cases ------------------------------------------------------------------------------


def _supports(adapters: Adapters) -> Callable[[str], bool] | None:
    sender = getattr(adapters, "alert_sender", None)
    return sender.supports if sender is not None else None


async def list_alert_rules(adapters: Adapters) -> list[AlertRule]:
    async with adapters.uow_factory() as uow:
        return await uow.alerts.list_rules()


async def get_alert_rule(adapters: Adapters, rule_id: int) -> AlertRule | None:
    async with adapters.uow_factory() as uow:
        return await uow.alerts.get_rule(rule_id)


async def create_alert_rule(adapters: Adapters, change: RuleInput) -> AlertRule:
    """A new rule; its ``webhook_secret`` is in the returned rule, the one time it is shown."""
    if isinstance(change.mode, Unset):
        change = replace(change, mode=AlertMode.INSTANT)
    if isinstance(change.channels, Unset):
        raise InvalidChannel("A rule needs at least one channel", field="channels")
    now = adapters.clock.now()
    blank = AlertRule(
        id=None,
        name="",
        mode=AlertMode.INSTANT,
        filter=CommentFilter(),
        channels=[],
        webhook_secret=new_webhook_secret(),
        created_at=now,
        updated_at=now,
    )
    rule = apply_changes(blank, change, _supports(adapters))
    async with adapters.uow_factory() as uow:
        stored = await uow.alerts.add_rule(rule)
        await uow.commit()
    log.info("alerts.rule_created", rule_id=stored.id, mode=stored.mode.value, channels=len(stored.channels))
    return stored


async def update_alert_rule(adapters: Adapters, rule_id: int, change: RuleInput) -> AlertRule:
    async with adapters.uow_factory() as uow:
        rule = await uow.alerts.get_rule(rule_id)
        if rule is None:
            raise NotFound(f"Alert rule {rule_id} not found", field="id")
        changed = apply_changes(rule, change, _supports(adapters))
        changed.updated_at = adapters.clock.now()
        stored = await uow.alerts.save_rule(changed)
        await uow.commit()
    return stored


async def remove_alert_rule(adapters: Adapters, rule_id: int) -> None:
    async with adapters.uow_factory() as uow:
        if not await uow.alerts.remove_rule(rule_id):
            raise NotFound(f"Alert rule {rule_id} not found", field="id")
        await uow.commit()


@dataclass(frozen=True)
class ChannelTest:
    channel: str  # masked
    ok: bool
    detail: str


async def test_alert_rule(adapters: Adapters, rule_id: int) -> list[ChannelTest]:
    """Send a sample message to each of the rule's channels now; what each answered."""
    rule = await get_alert_rule(adapters, rule_id)
    if rule is None:
        raise NotFound(f"Alert rule {rule_id} not found", field="id")
    if adapters.alert_sender is None:
        raise DomainError("This server sends no alerts")
    message = test_message(rule, adapters.public_url)
    results = await asyncio.gather(*(_send(adapters, rule, ch, message) for ch in rule.channels))
    return [
        ChannelTest(channel=ch.masked, ok=r.ok, detail=r.detail) for ch, r in zip(rule.channels, results, strict=True)
    ]


async def _send(adapters: Adapters, rule: AlertRule, channel: AlertChannel, message: AlertMessage) -> SendResult:
    if adapters.alert_sender is None:
        return SendResult(False, "this server sends no alerts")
    if channel.unreadable is not None:
        return SendResult(False, channel.unreadable)
    try:
        async with asyncio.timeout(SEND_TIMEOUT):
            result: SendResult = await adapters.alert_sender.send(channel.url, message, secret=rule.webhook_secret)
    except TimeoutError:
        result = SendResult(False, f"no answer within {SEND_TIMEOUT:.0f} s")
    except Exception as e:  # a channel's failure is that delivery's, never the loop's
        result = SendResult(False, f"{type(e).__name__}: {e}")
    # Whatever an answer echoed of the URL is masked before it is stored or logged.
    detail = result.detail.replace(channel.url, channel.masked)
    return SendResult(result.ok, scrub(detail, channel.url))


# --- the outbox -----------------------------------------------------------------------------


async def record_matched(uow: UnitOfWork, comment_ids: Sequence[int], now: datetime) -> int:
    """In the transaction that stored these comments' matches: a PENDING delivery per active
    rule, channel and comment the rule's filter admits (only once ever: a unique row)."""
    if not comment_ids:
        return 0
    return int(await uow.alerts.enqueue_matches(comment_ids, now=now))


# --- the delivery loop ----------------------------------------------------------------------


@dataclass
class _Work:
    """One (rule, channel)'s messages of one pass."""

    rule: AlertRule
    channel: AlertChannel
    batches: list[Batch]


class Deliverer:
    """Claims due deliveries, sends them, records the outcome. One per process.

    A pass claims every due (rule, channel) in one short transaction (the rows leased, each
    message's id fixed), then sends each pair's messages in a task of its own, recorded in a
    transaction of its own when that pair is done: a slow or failing channel holds up nothing
    but itself. A pair still sending is skipped by later passes, so a rule's messages to a
    channel go out one after the other, in order."""

    def __init__(self, adapters: Adapters, *, worker_id: str, rng: random.Random | None = None) -> None:
        self.adapters = adapters
        self.worker_id = worker_id
        self.budget = adapters.alert_budget or LocalSendBudget()
        self.rng = rng or random.Random()
        self.stats: DeliveryStats = adapters.alert_stats or DeliveryStats()
        self._sending: dict[tuple[int, int], asyncio.Task[int]] = {}

    async def run_once(self, *, wait: bool = True) -> int:
        """One pass over every due (rule, channel). ``wait``: until its messages are sent and
        recorded, returning how many rows it settled; else at once, returning how many rows it
        took on (0: nothing was due)."""
        now = self.adapters.clock.now()
        work: list[_Work] = []
        skipped = 0
        async with self.adapters.uow_factory() as uow:
            groups = [g for g in await uow.alerts.due_groups(now=now, limit=200) if g not in self._sending]
            if not groups:
                return 0
            rules = {r.id: r for r in await uow.alerts.list_rules()}
            for rule_id, channel_id in groups:
                rule = rules.get(rule_id)
                channel = next((c for c in rule.channels if c.id == channel_id), None) if rule else None
                if rule is None or rule.id is None or channel is None:
                    continue
                rows = await uow.alerts.claim(
                    rule.id, channel_id, now=now, owner=self.worker_id, lease_until=now + self.adapters.alert_lease,
                    limit=CLAIM_LIMIT,
                    due_only=rule.mode is AlertMode.INSTANT and not rule.is_system,
                )
                if not rows:
                    continue
                last_sent = (
                    await uow.alerts.last_sent_at(rule.id, channel_id) if rule.mode is AlertMode.THRESHOLD else None
                )
                reserved = await self.budget.reserve(channel.url, len(rows), now.timestamp())
                batches, skip, back = plan_batches(
                    rule, rows, now=now, allowed=reserved.granted, last_sent=last_sent
                )
                if reserved.granted is not None and reserved.granted > len(batches):
                    await self.budget.give_back(reserved, reserved.granted - len(batches))
                for batch in batches:
                    await uow.alerts.assign([r.id for r in batch.rows], batch.message_id)
                if skip:
                    await uow.alerts.settle([r.id for r in skip], DeliveryState.SKIPPED, now=now)
                    skipped += len(skip)
                if back:
                    await uow.alerts.release(
                        [r.id for r in back], next_attempt_at=await self._back_at(rule, channel, back, now)
                    )
                if batches:
                    work.append(_Work(rule, channel, batches))
            comment_ids = [r.comment_id for w in work for b in w.batches for r in b.rows if r.comment_id is not None]
            items = await uow.alerts.comments_for(comment_ids) if comment_ids else {}
            await uow.commit()
        self.stats.skipped += skipped
        started = []
        for w in work:
            key = (w.rule.id or 0, w.channel.id or 0)
            task = asyncio.create_task(self._send_all(w, items), name=f"alerts:{key[0]}:{key[1]}")
            self._sending[key] = task
            task.add_done_callback(partial(self._sent, key))
            started.append(task)
        if not wait:
            return skipped + sum(len(b.rows) for w in work for b in w.batches)
        results = await asyncio.gather(*started, return_exceptions=True)
        done = skipped
        for r in results:
            if isinstance(r, BaseException):
                if not isinstance(r, Exception):
                    raise r
                log.warning("alerts.group_failed", error=type(r).__name__, detail=str(r)[:300])
            else:
                done += r
        return done

    def _sent(self, key: tuple[int, int], _task: asyncio.Task[int]) -> None:
        self._sending.pop(key, None)

    async def aclose(self) -> None:
        """Stop sending: rows being sent stay leased and go out again once their lease lapses,
        with the same message ids."""
        tasks = list(self._sending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _back_at(
        self, rule: AlertRule, channel: AlertChannel, rows: list[PendingDelivery], now: datetime
    ) -> datetime:
        if rule.mode is AlertMode.DIGEST and rule.digest_minutes:
            return min(r.created_at for r in rows) + timedelta(minutes=rule.digest_minutes)
        if rule.mode is AlertMode.THRESHOLD and rule.threshold_minutes:
            # Looked at again when the oldest leaves the window, or at once when a match comes.
            return min(r.created_at for r in rows) + timedelta(minutes=rule.threshold_minutes)
        return now + timedelta(seconds=max(0.5, await self.budget.retry_in(channel.url, now.timestamp())))

    async def _send_all(self, work: _Work, items: dict[int, AlertComment]) -> int:
        """Send a pair's messages in order; stop at the first failure (what follows waits with
        it, keeping the order). Then record everything in one transaction."""
        sent: list[Batch] = []
        empty: list[Batch] = []
        failed: tuple[list[Batch], str] | None = None
        for index, batch in enumerate(work.batches):
            message = self._message(work.rule, batch, items)
            if message is None:  # every comment was removed since: nothing to tell
                empty.append(batch)
                continue
            result = await _send(self.adapters, work.rule, work.channel, message)
            if not result.ok:
                failed = (work.batches[index:], result.detail)
                break
            sent.append(batch)
        now = self.adapters.clock.now()
        async with self.adapters.uow_factory() as uow:
            for batch in sent:
                await uow.alerts.settle([r.id for r in batch.rows], DeliveryState.SENT, now=now, attempted=True)
            for batch in empty:
                await uow.alerts.settle([r.id for r in batch.rows], DeliveryState.SKIPPED, now=now)
            gave_up = retried = 0
            if failed is not None:
                batches, error = failed
                # One time for the whole tail, so it goes again together, in order.
                first = batches[0].rows[0]
                retry_at = next_attempt(first.created_at, first.attempts + 1, now, self.rng)
                for batch in batches:
                    for row in batch.rows:
                        # Past its own 24 hours it ends FAILED; a younger row goes on trying.
                        when = retry_at if retry_at is not None else next_attempt(
                            row.created_at, row.attempts + 1, now, self.rng
                        )
                        if now - row.created_at >= GIVE_UP_AFTER:
                            when = None
                        await uow.alerts.record_failure(row.id, error=error, next_attempt_at=when, now=now)
                        gave_up += when is None
                        retried += when is not None
            await uow.commit()
        self.stats.messages += len(sent)
        self.stats.sent += sum(len(b.rows) for b in sent)
        self.stats.skipped += sum(len(b.rows) for b in empty)
        self.stats.failed += gave_up
        self.stats.retried += retried
        if failed is not None:
            log.warning("alerts.send_failed", rule_id=work.rule.id, channel=work.channel.masked,
                        rows=gave_up + retried, gave_up=gave_up, error=failed[1][:300])
        return sum(len(b.rows) for b in sent) + sum(len(b.rows) for b in empty)

    def _message(self, rule: AlertRule, batch: Batch, items: dict[int, AlertComment]) -> AlertMessage | None:
        public_url = self.adapters.public_url
        if batch.kind == "system":
            return compose_system_message(rule, batch.message_id, [r.event or {} for r in batch.rows], public_url)
        shown = [items[r.comment_id] for r in batch.rows if r.comment_id is not None and r.comment_id in items]
        if not shown:
            return None
        return compose_message(rule, batch.message_id, shown, public_url=public_url, kind=batch.kind)


async def delivery_loop(
    adapters: Adapters, *, worker_id: str, idle: float = 0.2, system_every: float = 60.0
) -> None:
    """Deliver until cancelled: at once while there is work, every ``idle`` seconds otherwise;
    system events once every ``system_every`` seconds."""
    deliverer = Deliverer(adapters, worker_id=worker_id)
    try:
        await _deliver_forever(deliverer, idle=idle, system_every=system_every)
    finally:
        await deliverer.aclose()


async def _deliver_forever(deliverer: Deliverer, *, idle: float, system_every: float) -> None:
    last_system = 0.0
    while True:
        try:
            if time.monotonic() - last_system >= system_every:
                last_system = time.monotonic()
                await check_system_events(deliverer.adapters)
            done = await deliverer.run_once(wait=False)
        except Unavailable as e:
            log.warning("alerts.loop_deferred", error=e.message)
            done = 0
            await asyncio.sleep(1.0)
        except Exception:  # a bug in one pass must not end delivery
            log.exception("alerts.loop_failed")
            done = 0
            await asyncio.sleep(1.0)
        if not done:
            await asyncio.sleep(idle)


# --- system events --------------------------------------------------------------------------


def _event(kind: SystemEvent, en: str, ru: str, **details: Any) -> dict[str, Any]:
    return {"kind": kind.value, "text_en": en, "text_ru": ru, **details}


async def check_system_events(adapters: Adapters) -> int:
    """Look for the operational events system rules alert, and queue one delivery per rule,
    channel and event (the event's key keeps each from being alerted twice)."""
    now = adapters.clock.now()
    async with adapters.uow_factory() as uow:
        rules = [r for r in await uow.alerts.list_rules() if r.is_system and r.active(now)]
    if not rules:
        return 0
    wanted = {e for r in rules for e in r.system_events}
    events: list[tuple[SystemEvent, str, dict[str, Any]]] = []
    hour = now.strftime("%Y-%m-%dT%H")
    async with adapters.uow_factory() as uow:
        if SystemEvent.TASK_FAILED in wanted or SystemEvent.TASK_STALLED in wanted:
            for task in await uow.tasks.list(states=[TaskState.FAILED], limit=50):
                if task.finished_at is not None and task.finished_at >= now - timedelta(hours=1):
                    events.append(
                        (
                            SystemEvent.TASK_FAILED,
                            f"task-failed:{task.id}",
                            _event(
                                SystemEvent.TASK_FAILED,
                                f"task {task.id} ({task.kind.value}) failed: {task.error or ''}",
                                f"задача {task.id} ({task.kind.value}) завершилась ошибкой: {task.error or ''}",
                                taskId=task.id,
                            ),
                        )
                    )
            stalled_since = now - adapters.task_timing.stall_after
            for task in await uow.tasks.list(states=[TaskState.RUNNING], limit=200):
                stalled_at = getattr(task, "stalled_at", None)
                if stalled_at is not None and stalled_at >= stalled_since - timedelta(hours=1):
                    events.append(
                        (
                            SystemEvent.TASK_STALLED,
                            f"task-stalled:{task.id}:{stalled_at.isoformat()}",
                            _event(
                                SystemEvent.TASK_STALLED,
                                f"task {task.id} ({task.kind.value}) stalled",
                                f"задача {task.id} ({task.kind.value}) зависла",
                                taskId=task.id,
                            ),
                        )
                    )
        if SystemEvent.COMMUNITY_LATE in wanted:
            for group in await uow.groups.list(active=True):
                if not group.monitor_enabled or group.last_success_at is None:
                    continue
                interval = timedelta(minutes=group.monitor_interval_minutes)
                if group.last_success_at < now - 2 * interval:
                    events.append(
                        (
                            SystemEvent.COMMUNITY_LATE,
                            f"community-late:{group.id}:{group.last_success_at.isoformat()}",
                            _event(
                                SystemEvent.COMMUNITY_LATE,
                                f"community {group.name} not collected since {group.last_success_at:%Y-%m-%d %H:%M}",
                                f"сообщество {group.name} не собиралось с {group.last_success_at:%Y-%m-%d %H:%M} UTC",
                                groupId=group.id,
                            ),
                        )
                    )
        if SystemEvent.CHANNEL_FAILING in wanted:
            for channel_id, masked in await uow.alerts.failing_channels(since=now - CHANNEL_FAILING_AFTER):
                events.append(
                    (
                        SystemEvent.CHANNEL_FAILING,
                        f"channel-failing:{channel_id}:{hour}",
                        _event(
                            SystemEvent.CHANNEL_FAILING,
                            f"alert channel {masked} has been failing for an hour",
                            f"канал оповещений {masked} не работает уже час",
                            channel=masked,
                        ),
                    )
                )
    if SystemEvent.TOKENS_DOWN in wanted:
        states = await adapters.vk.token_states()
        if states and all(s.status is not TokenStatus.ACTIVE for s in states):
            events.append(
                (
                    SystemEvent.TOKENS_DOWN,
                    f"tokens-down:{hour}",
                    _event(
                        SystemEvent.TOKENS_DOWN,
                        "every VK token is parked or revoked: collection has stopped",
                        "все токены VK отдыхают или отозваны: сбор остановлен",
                    ),
                )
            )
    if not events:
        return 0
    added = 0
    async with adapters.uow_factory() as uow:
        for rule in rules:
            for kind, key, details in events:
                if kind in rule.system_events:
                    added += await uow.alerts.enqueue_event(rule, key, details, now=now)
        await uow.commit()
    return added
