"""The alerts' outbox and delivery policy on SQLite and PostgreSQL: a comment is queued once per
rule and channel however often its matches are stored; a burst of 1,000 matches becomes the
number of messages each mode promises (and a rate-limited channel folds the excess into a
digest, dropping nothing); failures retry the same message, keep a rule's order, never hold up
another channel, and end FAILED after 24 hours; two deliverers never send a row twice.

Time is a ``FakeClock``; the sender records what it is given and answers as told."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from domain import alerts
from domain.alert_model import AlertMessage, AlertMode, RuleInput, SendResult
from domain.alerts import Deliverer, record_matched
from domain.models import Comment, Group, Keyword, Match, Post
from domain.ports import Adapters
from domain.queries import CommentFilter
from infrastructure.db.tables import alert_deliveries
from tests.fakes import FakeClock

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
HOOK_A = "https://a.example.com/hook"
HOOK_B = "https://b.example.com/hook"
TELEGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890"


@dataclass
class RecordingSender:
    """Every message sent, by URL; URLs in ``failing`` answer a failure."""

    sent: list[tuple[str, AlertMessage]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    clock: FakeClock | None = None
    times: list[datetime] = field(default_factory=list)  # when each message went, by ``clock``

    def supports(self, url: str) -> bool:
        return True

    async def send(self, url: str, message: AlertMessage, *, secret: str) -> SendResult:
        await asyncio.sleep(0)
        if url in self.failing:
            return SendResult(False, "HTTP 503: down")
        self.sent.append((url, message))
        if self.clock is not None:
            self.times.append(self.clock.now())
        return SendResult(True, "HTTP 204")

    def to(self, url: str) -> list[AlertMessage]:
        return [m for u, m in self.sent if u == url]


def adapters_for(uow_factory, sender: RecordingSender, clock: FakeClock) -> Adapters:
    return Adapters(
        uow_factory=uow_factory, vk=None, queue=None, events=None, clock=clock,  # type: ignore[arg-type]
        alert_sender=sender, public_url="https://vkcp.example.com",
    )


async def store_matched(uow_factory, count: int, *, start: int = 1, now: datetime) -> list[int]:
    """``count`` comments matching "кошка", stored as the collector stores them: comments,
    matches and the outbox in one transaction."""
    async with uow_factory() as uow:
        group = await uow.groups.get_by_vk_id(1)
        if group is None:
            group = await uow.groups.add(Group(vk_id=1, screen_name="cats", name="Кошки"))
            await uow.posts.upsert_many(group.id, [Post(owner_id=-1, vk_id=1, from_id=-1, text="p", published_at=T0)])
        keyword = next((k for k in await uow.keywords.list() if k.word == "кошка"), None)
        if keyword is None:
            keyword = await uow.keywords.add(Keyword(id=0, word="кошка"))
        made = [
            Comment(owner_id=-1, vk_id=i, post_vk_id=1, from_id=100 + i, text=f"кошка номер {i}",
                    published_at=T0 + timedelta(seconds=i))
            for i in range(start, start + count)
        ]
        ids = await uow.comments.upsert_many(group.id, made)
        stored = sorted(ids.values())
        await uow.matches.replace_for_comments(
            stored, [Match(i, keyword.id, "кошка", 0, 5, "кошка номер") for i in stored]
        )
        await record_matched(uow, stored, now)
        await uow.commit()
    return stored


async def rule(adapters: Adapters, channels: Sequence[str], **fields) -> alerts.AlertRule:
    return await alerts.create_alert_rule(adapters, RuleInput(name=fields.pop("name", "r"), channels=channels, **fields))


async def deliver_all(deliverer: Deliverer) -> int:
    total = 0
    while done := await deliverer.run_once():
        total += done
    return total


async def states(migrated_db) -> dict[str, int]:
    engine, _ = migrated_db
    async with engine.connect() as conn:
        rows = (await conn.execute(select(alert_deliveries.c.state))).scalars().all()
    found: dict[str, int] = {}
    for state in rows:
        found[state] = found.get(state, 0) + 1
    return found


async def test_a_comment_is_queued_once_per_rule_and_channel(uow_factory, migrated_db) -> None:
    clock, sender = FakeClock(T0), RecordingSender()
    adapters = adapters_for(uow_factory, sender, clock)
    await rule(adapters, [HOOK_A, HOOK_B])
    await rule(adapters, [HOOK_A], filter=CommentFilter(text="номер 1"))  # 1, 10-19, 100-...
    await rule(adapters, [HOOK_A], enabled=False)
    await rule(adapters, [HOOK_A], muted_until=T0 + timedelta(hours=1))
    first = await store_matched(uow_factory, 20, now=T0)
    # Stored again (a re-parse, a re-analysis, a retried job): nothing new is queued.
    await store_matched(uow_factory, 20, now=T0)
    async with uow_factory() as uow:
        assert await record_matched(uow, first, T0) == 0
    assert await states(migrated_db) == {"PENDING": 2 * 20 + 11}
    deliverer = Deliverer(adapters, worker_id="w1")
    assert await deliver_all(deliverer) == 51
    assert len(sender.to(HOOK_A)) == 31 and len(sender.to(HOOK_B)) == 20
    assert len({m.message_id for m in sender.to(HOOK_A)}) == 31
    assert await states(migrated_db) == {"SENT": 51}


async def test_a_burst_of_1000_gives_what_each_mode_promises(uow_factory, migrated_db) -> None:
    clock = FakeClock(T0)
    sender = RecordingSender(clock=clock)
    adapters = adapters_for(uow_factory, sender, clock)
    digest_hook, threshold_hook = HOOK_A, HOOK_B
    await rule(adapters, [digest_hook], name="digest", mode=AlertMode.DIGEST, digest_minutes=10)
    await rule(adapters, [threshold_hook], name="threshold", mode=AlertMode.THRESHOLD,
               threshold_count=100, threshold_minutes=5)
    await rule(adapters, [TELEGRAM], name="instant")  # 20 messages a minute per group chat
    deliverer = Deliverer(adapters, worker_id="w1")
    for batch in range(10):  # 1,000 matches within a minute
        await store_matched(uow_factory, 100, start=1 + batch * 100, now=clock.now())
        await deliverer.run_once()
        clock.advance(seconds=5)
    await deliver_all(deliverer)
    # THRESHOLD: one message for the window that reached 100, counting everything in it.
    [threshold] = sender.to(threshold_hook)
    assert threshold.payload["type"] == "alert.threshold"
    # INSTANT to Telegram: the first 20 went one by one (the rate limit), the rest were folded,
    # never dropped: every matched comment is in some message.
    telegram = sender.to(TELEGRAM)
    assert len(telegram) == 20 and sum(m.payload["count"] for m in telegram) == 100  # the first 100: 19 + 1
    assert [m.payload["type"] for m in telegram] == ["alert.match"] * 19 + ["alert.digest"]
    # DIGEST: nothing before its 10 minutes; then one message for all 1,000.
    assert sender.to(digest_hook) == []
    clock.advance(minutes=10)
    await deliver_all(deliverer)
    telegram = sender.to(TELEGRAM)
    assert sum(m.payload["count"] for m in telegram) == 1000  # none dropped
    sent_at = [t for (url, _), t in zip(sender.sent, sender.times, strict=True) if url == TELEGRAM]
    assert all(sum(1 for t in sent_at if start <= t < start + timedelta(minutes=1)) <= 20 for start in sent_at)
    [digest] = sender.to(digest_hook)
    assert digest.payload["type"] == "alert.digest" and digest.payload["count"] == 1000
    assert len(digest.payload["comments"]) == 5 and "review" in digest.payload["consoleUrl"]
    # The threshold's window held all 1,000: one message (for the first 100), the rest covered by it.
    assert sender.to(threshold_hook) == [threshold] and threshold.payload["count"] == 100
    assert await states(migrated_db) == {"SENT": 1000 + 100 + 1000, "SKIPPED": 900}


async def test_a_threshold_window_below_its_count_sends_nothing(uow_factory, migrated_db) -> None:
    clock, sender = FakeClock(T0), RecordingSender()
    adapters = adapters_for(uow_factory, sender, clock)
    await rule(adapters, [HOOK_A], mode=AlertMode.THRESHOLD, threshold_count=50, threshold_minutes=5)
    deliverer = Deliverer(adapters, worker_id="w1")
    await store_matched(uow_factory, 49, now=clock.now())
    await deliver_all(deliverer)
    clock.advance(minutes=6)  # the window passed with 49
    await store_matched(uow_factory, 10, start=100, now=clock.now())
    await deliver_all(deliverer)
    assert sender.sent == []
    assert await states(migrated_db) == {"SKIPPED": 49, "PENDING": 10}


async def test_failures_retry_the_same_message_in_order_and_never_hold_up_another_channel(
    uow_factory, migrated_db
) -> None:
    clock, sender = FakeClock(T0), RecordingSender(failing={HOOK_A})
    adapters = adapters_for(uow_factory, sender, clock)
    await rule(adapters, [HOOK_A, HOOK_B])
    await store_matched(uow_factory, 5, now=clock.now())
    deliverer = Deliverer(adapters, worker_id="w1")
    await deliver_all(deliverer)
    assert len(sender.to(HOOK_B)) == 5 and sender.to(HOOK_A) == []
    assert await states(migrated_db) == {"SENT": 5, "PENDING": 5}
    engine, _ = migrated_db
    async with engine.connect() as conn:
        rows = (await conn.execute(
            select(alert_deliveries.c.attempts, alert_deliveries.c.last_error, alert_deliveries.c.message_id)
            .where(alert_deliveries.c.state == "PENDING").order_by(alert_deliveries.c.id)
        )).all()
    # The first failed; the rest of the rule's queue waited behind it (its order is kept).
    assert [(r.attempts, r.last_error) for r in rows][:1] == [(1, "HTTP 503: down")]
    planned = [r.message_id for r in rows]
    assert await deliverer.run_once() == 0  # backing off: not due yet
    sender.failing.clear()
    clock.advance(hours=1)
    await deliver_all(deliverer)
    got = sender.to(HOOK_A)
    assert [m.message_id for m in got] == planned  # the ids fixed before the first try
    assert [m.payload["comment"]["id"] for m in got] == sorted(m.payload["comment"]["id"] for m in got)
    assert await states(migrated_db) == {"SENT": 10}


async def test_a_channel_failing_for_24_hours_ends_failed_with_its_error(uow_factory, migrated_db) -> None:
    clock, sender = FakeClock(T0), RecordingSender(failing={HOOK_A})
    adapters = adapters_for(uow_factory, sender, clock)
    await rule(adapters, [HOOK_A])
    await store_matched(uow_factory, 2, now=clock.now())
    deliverer = Deliverer(adapters, worker_id="w1")
    for _ in range(200):
        await deliver_all(deliverer)
        if (await states(migrated_db)).get("PENDING", 0) == 0:
            break
        clock.advance(minutes=30)
    assert await states(migrated_db) == {"FAILED": 2}
    assert clock.now() - T0 >= timedelta(hours=24)
    engine, _ = migrated_db
    async with engine.connect() as conn:
        rows = (await conn.execute(select(alert_deliveries.c.last_error, alert_deliveries.c.attempts))).all()
    assert {r.last_error for r in rows} == {"HTTP 503: down"} and min(r.attempts for r in rows) > 5


async def test_two_deliverers_at_once_send_each_row_once(uow_factory, migrated_db) -> None:
    clock, sender = FakeClock(T0), RecordingSender()
    adapters = adapters_for(uow_factory, sender, clock)
    for n in range(4):
        await rule(adapters, [f"https://h{n}.example.com/hook"])
    await store_matched(uow_factory, 50, now=clock.now())
    first, second = Deliverer(adapters, worker_id="w1"), Deliverer(adapters, worker_id="w2")
    await asyncio.gather(deliver_all(first), deliver_all(second))
    ids = [m.message_id + u for u, m in sender.sent]
    assert len(ids) == 200 and len(set(ids)) == 200
    assert await states(migrated_db) == {"SENT": 200}


async def test_a_rules_query_and_workflow_filters_decide_what_is_queued(uow_factory, migrated_db) -> None:
    """A rule filtered by the rule language queues only the matched comments its query matches
    (the database narrows, the domain's matcher decides, as for Review); the workflow's filters
    apply too; a query naming a keyword that no longer exists queues nothing for its rule."""
    from domain.models import CommentStatus

    clock, sender = FakeClock(T0), RecordingSender()
    adapters = adapters_for(uow_factory, sender, clock)
    await rule(adapters, [HOOK_A], name="two", filter=CommentFilter(query="кошка AND (1 OR 2)"))
    await rule(adapters, [HOOK_A], name="but two", filter=CommentFilter(query="kw:кошка -2"))
    await rule(adapters, [HOOK_A], name="new", filter=CommentFilter(statuses=(CommentStatus.NEW,)))
    await rule(adapters, [HOOK_A], name="done", filter=CommentFilter(statuses=(CommentStatus.DONE,)))
    await rule(adapters, [HOOK_A], name="gone", filter=CommentFilter(query="kw:собака"))
    await store_matched(uow_factory, 20, now=T0)
    queued = await Deliverer(adapters, worker_id="w1").run_once()
    assert queued == 2 + 19 + 20
    texts = sorted(m.payload["comment"]["text"] for m in sender.to(HOOK_A) if m.payload["rule"]["name"] == "two")
    assert texts == ["кошка номер 1", "кошка номер 2"]


async def test_credentials_are_sealed_at_rest_and_a_changed_key_fails_deliveries_saying_why(
    uow_factory, migrated_db
) -> None:
    """The database holds no channel credential and no webhook secret in the clear; a server
    whose secret key changed still lists the rule (masked as saved) but sends nothing to it, and
    each delivery says why."""
    from infrastructure.db.tables import alert_channels, alert_rules
    from infrastructure.db.uow import SqlUnitOfWork
    from infrastructure.sealed import Sealer

    clock = FakeClock(T0)
    sender = RecordingSender()
    adapters = adapters_for(uow_factory, sender, clock)
    created = await rule(adapters, [HOOK_A, TELEGRAM])
    engine, sessions = migrated_db
    async with engine.connect() as conn:
        rows = [*(await conn.execute(select(alert_channels))).all(), *(await conn.execute(select(alert_rules))).all()]
        stored = " ".join(str(v) for row in rows for v in row)
        urls = (await conn.execute(select(alert_channels.c.url))).scalars().all()
        secrets = (await conn.execute(select(alert_rules.c.webhook_secret))).scalars().all()
    for secret in ("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", created.webhook_secret):
        assert secret not in stored
    assert len(urls) == 2 and all(v.startswith("sealed:v1:") for v in [*urls, *secrets])

    rekeyed = Sealer(b"another server secret key, 32+ bytes long")
    other = adapters_for(lambda: SqlUnitOfWork(sessions, rekeyed), sender, clock)
    [listed] = await alerts.list_alert_rules(other)
    assert [c.masked for c in listed.channels] == [c.masked for c in created.channels]
    tested = await alerts.test_alert_rule(other, listed.id)
    assert [t.ok for t in tested] == [False, False]
    assert all("VKCP_SECRET_KEY" in t.detail for t in tested), tested
    await store_matched(other.uow_factory, 3, now=T0)
    await deliver_all(Deliverer(other, worker_id="w2"))
    assert sender.sent == []
    async with engine.connect() as conn:
        errors = (await conn.execute(select(alert_deliveries.c.last_error))).scalars().all()
    assert len(errors) == 6 and all("secret key" in (e or "") for e in errors), errors
    assert not any("AAHdqTcv" in (e or "") for e in errors)

    # The right key again: the same rows go out.
    clock.advance(hours=1)
    await deliver_all(Deliverer(adapters, worker_id="w1"))
    assert len(sender.to(HOOK_A)) == 3 and len(sender.to(TELEGRAM)) == 3
