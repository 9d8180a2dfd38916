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
