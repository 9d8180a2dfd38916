"""System rules: the operational events an admin points at channels are queued once each
(a FAILED task, every VK token down, a monitored community late, a stalled task, a channel
failing for an hour), in the rule's language, and delivered as one message per pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from domain import alerts
from domain.alert_model import AlertLanguage, AlertMessage, RuleInput, SendResult, SystemEvent
from domain.alerts import Deliverer, check_system_events
from domain.models import Group, Task, TaskKind, TaskState
from domain.ports import Adapters
from domain.vk import TokenState, TokenStatus
from tests.fakes import FakeClock, InMemoryStore

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@dataclass
class Pool:
    states: list[TokenState] = field(default_factory=list)

    async def token_states(self) -> list[TokenState]:
        return self.states


@dataclass
class Sent:
    messages: list[tuple[str, AlertMessage]] = field(default_factory=list)

    def supports(self, url: str) -> bool:
        return True

    async def send(self, url: str, message: AlertMessage, *, secret: str) -> SendResult:
        self.messages.append((url, message))
        return SendResult(True, "HTTP 204")


def make(store: InMemoryStore, pool: Pool, sender: Sent) -> Adapters:
    return Adapters(uow_factory=store.uow_factory, vk=pool, queue=None, events=None,  # type: ignore[arg-type]
                    clock=FakeClock(NOW), alert_sender=sender, public_url="https://vkcp.example.com")


async def test_each_operational_event_is_alerted_once_in_the_rules_language() -> None:
    store, pool, sender = InMemoryStore(), Pool(), Sent()
    adapters = make(store, pool, sender)
    await alerts.create_alert_rule(adapters, RuleInput(
        name="ops", channels=["https://ops.example.com/hook"], language=AlertLanguage.RU,
        system_events=list(SystemEvent),
    ))
    await alerts.create_alert_rule(adapters, RuleInput(
        name="only failures", channels=["https://dev.example.com/hook"], system_events=[SystemEvent.TASK_FAILED],
    ))
    store.tasks[100] = Task(id=100, kind=TaskKind.PARSE, state=TaskState.FAILED, error="VK said no",
                            finished_at=NOW - timedelta(minutes=5))
    store.tasks[101] = Task(id=101, kind=TaskKind.PARSE, state=TaskState.SUCCEEDED, finished_at=NOW)
    store.groups[200] = Group(id=200, vk_id=5, screen_name="late", name="Поздние", monitor_enabled=True,
                              monitor_interval_minutes=60, last_success_at=NOW - timedelta(hours=3))
    store.groups[201] = Group(id=201, vk_id=6, screen_name="fine", name="Fine", monitor_enabled=True,
                              monitor_interval_minutes=60, last_success_at=NOW - timedelta(minutes=90))
    pool.states = [TokenState("ab12", TokenStatus.PARKED, 0), TokenState("cd34", TokenStatus.REVOKED, 0)]

    assert await check_system_events(adapters) == 4  # failed task x2 rules, tokens, late community
    assert await check_system_events(adapters) == 0  # the same events: nothing new
    assert await Deliverer(adapters, worker_id="w").run_once() == 4
    by_url = {url: m for url, m in sender.messages}
    ops, dev = by_url["https://ops.example.com/hook"], by_url["https://dev.example.com/hook"]
    assert ops.payload["type"] == "alert.system" and ops.payload["count"] == 3
    kinds = {e["kind"] for e in ops.payload["events"]}
    assert kinds == {"TASK_FAILED", "TOKENS_DOWN", "COMMUNITY_LATE"}
    assert "задача 100" in ops.body and "Поздние" in ops.body  # Russian, as the rule says
    assert dev.payload["count"] == 1 and "task 100 (PARSE) failed: VK said no" in dev.body

    pool.states = [TokenState("ab12", TokenStatus.ACTIVE, 0), TokenState("cd34", TokenStatus.REVOKED, 0)]
    store.tasks[102] = Task(id=102, kind=TaskKind.ANALYZE, state=TaskState.FAILED, finished_at=NOW)
    assert await check_system_events(adapters) == 2  # one new failure, to both rules; tokens are fine now


async def test_a_channel_failing_for_an_hour_and_a_stalled_task_are_alerted() -> None:
    store, pool, sender = InMemoryStore(), Pool(), Sent()
    adapters = make(store, pool, sender)
    ops = await alerts.create_alert_rule(adapters, RuleInput(
        name="ops", channels=["https://ops.example.com/hook"],
        system_events=[SystemEvent.CHANNEL_FAILING, SystemEvent.TASK_STALLED],
    ))
    broken = await alerts.create_alert_rule(adapters, RuleInput(
        name="cats", channels=["https://hooks.example.com/AAAAbbbbCCCC1234dddd"],
    ))
    assert ops.id is not None and broken.id is not None
    channel = broken.channels[0]
    assert channel.id is not None
    # A delivery of the cats rule, queued 61 minutes ago and failed since.
    async with store.uow_factory() as uow:
        await uow.alerts.enqueue_event(broken, "c1", {}, now=NOW - timedelta(minutes=61))
        [row] = await uow.alerts.claim(broken.id, channel.id, now=NOW, owner="w", lease_until=NOW, limit=5,
                                       due_only=False)
        await uow.alerts.record_failure(row.id, error="HTTP 500", next_attempt_at=NOW + timedelta(hours=1), now=NOW)
        await uow.commit()
    store.tasks[300] = Task(id=300, kind=TaskKind.PARSE, state=TaskState.RUNNING, stalled_at=NOW - timedelta(minutes=1))

    assert await check_system_events(adapters) == 2
    assert await check_system_events(adapters) == 0
    await Deliverer(adapters, worker_id="w").run_once()
    [(url, message)] = sender.messages
    assert url == "https://ops.example.com/hook"
    assert {e["kind"] for e in message.payload["events"]} == {"CHANNEL_FAILING", "TASK_STALLED"}
    assert "AAAAbbbbCCCC1234dddd" not in message.body and "hooks.example.com" in message.body
