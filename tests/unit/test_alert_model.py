"""Alerts' pure policy: masking channel URLs, the retry schedule, Telegram's rate limits, and
how claimed deliveries become messages."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from domain.alert_model import (
    GIVE_UP_AFTER,
    AlertChannel,
    AlertMode,
    AlertRule,
    InvalidChannel,
    LocalSendBudget,
    PendingDelivery,
    check_channel_url,
    mask_channel,
    next_attempt,
    plan_batches,
    retry_delay,
    scrub,
)
from domain.queries import CommentFilter

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "secrets", "kept"),
    [
        ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890", ["AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"],
         "tgram://"),
        ("mailtos://alerts:hunter2@smtp.example.com?to=ops@example.com", ["hunter2"], "ops@example.com"),
        ("https://hooks.slack.com/services/T0001/B0002/XXXXxxxxXXXXxxxx1234", ["XXXXxxxxXXXXxxxx1234"],
         "hooks.slack.com"),
        ("https://example.com/hook?token=abc123def456ghi", ["abc123def456ghi"], "example.com/hook"),
        ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", ["JHMHI8qBe7bk2ZwO5U711o3dV_js"], "discord://"),
    ],
)
def test_channel_urls_are_masked_and_stay_recognisable(url: str, secrets: list[str], kept: str) -> None:
    masked = mask_channel(url)
    for secret in secrets:
        assert secret not in masked
    assert kept in masked and masked == mask_channel(url)
    assert all(s not in scrub(f"connect to {url} failed: {secrets[0]}", url) for s in secrets)


@pytest.mark.parametrize("url", ["", "   ", "no scheme", "https://", "http:// spaced.example.com/", "x" * 2001,
                                 "tgram://****saw/-100"])
def test_unusable_channel_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidChannel):
        check_channel_url(url, lambda _: True)


def test_apprise_urls_are_checked_by_the_sender() -> None:
    with pytest.raises(InvalidChannel):
        check_channel_url("nosuch://x", lambda _: False)
    assert check_channel_url(" json://127.0.0.1/x ", lambda _: True) == "json://127.0.0.1/x"


def test_retries_back_off_with_jitter_and_stop_after_a_day() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, rng) for n in range(1, 15)]
    assert 1 <= delays[0] <= 2 and delays[3] > delays[0]
    assert max(delays) <= 30 * 60
    assert len({round(retry_delay(5, rng), 3) for _ in range(20)}) > 1  # jitter
    assert next_attempt(T0, 3, T0 + timedelta(hours=1), rng) is not None
    assert next_attempt(T0, 40, T0 + GIVE_UP_AFTER, rng) is None
    late = next_attempt(T0, 40, T0 + GIVE_UP_AFTER - timedelta(seconds=1), rng)
    assert late is not None and late <= T0 + GIVE_UP_AFTER


async def test_telegram_allows_20_a_minute_per_chat_and_30_a_second_per_bot() -> None:
    budget = LocalSendBudget()
    chat = "tgram://111:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/-100200"
    assert (await budget.reserve("https://example.com/hook", 500, 0.0)).granted is None
    assert (await budget.reserve(chat, 20, 0.0)).granted == 20
    other_chat = "tgram://111:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/-100300"
    assert (await budget.reserve(other_chat, 50, 0.5)).granted == 10  # the bot's 30 a second, 20 of them spent
    assert (await budget.reserve(chat, 5, 1.0)).granted == 0 and await budget.retry_in(chat, 1.0) == pytest.approx(59)
    assert (await budget.reserve(chat, 50, 61.0)).granted == 20


async def test_two_pairs_sharing_a_chat_share_its_allowance_and_unused_is_given_back() -> None:
    budget = LocalSendBudget()
    chat = "tgram://111:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/-100200"
    first = await budget.reserve(chat, 15, 0.0)
    second = await budget.reserve(chat, 15, 0.0)  # another rule to the same chat, in the same pass
    assert (first.granted, second.granted) == (15, 5)
    await budget.give_back(first, 10)  # its plan folded the burst into 5 messages
    assert (await budget.reserve(chat, 15, 0.0)).granted == 10


def rows(n: int, *, at: datetime = T0) -> list[PendingDelivery]:
    return [PendingDelivery(id=i, rule_id=1, channel_id=1, comment_id=i, event_key=f"c{i}", event=None, attempts=0,
                            created_at=at) for i in range(1, n + 1)]


def rule(mode: AlertMode = AlertMode.INSTANT, **fields) -> AlertRule:
    return AlertRule(id=1, name="r", mode=mode, filter=CommentFilter(), channels=[AlertChannel(1, "https://x.y/z")],
                     **fields)


def test_an_instant_burst_beyond_the_rate_limit_is_folded_not_dropped() -> None:
    batches, skip, back = plan_batches(rule(), rows(12), now=T0, allowed=5)
    assert [len(b.rows) for b in batches] == [1, 1, 1, 1, 8] and [b.kind for b in batches][-1] == "digest"
    assert skip == back == []
    batches, _, back = plan_batches(rule(), rows(3), now=T0, allowed=0)
    assert batches == [] and len(back) == 3  # nothing may go now: it waits, whole
    batches, _, _ = plan_batches(rule(), rows(3), now=T0, allowed=None)
    assert [b.message_id for b in batches] == ["msg_d1", "msg_d2", "msg_d3"]


def test_a_retried_message_keeps_its_rows_and_id() -> None:
    claimed = rows(4)
    for r in claimed[:3]:
        r.message_id = "msg_d1_3_3"
    batches, _, _ = plan_batches(rule(AlertMode.DIGEST, digest_minutes=5), claimed, now=T0, allowed=None)
    assert [(b.message_id, [r.id for r in b.rows]) for b in batches] == [("msg_d1_3_3", [1, 2, 3])]


def test_digest_waits_for_its_minutes_then_sends_one_message() -> None:
    digest = rule(AlertMode.DIGEST, digest_minutes=10)
    batches, _, back = plan_batches(digest, rows(50), now=T0 + timedelta(minutes=9), allowed=None)
    assert batches == [] and len(back) == 50
    batches, _, _ = plan_batches(digest, rows(50), now=T0 + timedelta(minutes=10), allowed=None)
    assert [(b.kind, len(b.rows)) for b in batches] == [("digest", 50)]


def test_threshold_fires_once_per_window() -> None:
    threshold = rule(AlertMode.THRESHOLD, threshold_count=10, threshold_minutes=5)
    batches, skip, back = plan_batches(threshold, rows(9), now=T0, allowed=None)
    assert batches == [] and skip == [] and len(back) == 9
    batches, _, _ = plan_batches(threshold, rows(10), now=T0, allowed=None)
    assert [(b.kind, len(b.rows)) for b in batches] == [("threshold", 10)]
    batches, skip, _ = plan_batches(threshold, rows(30), now=T0 + timedelta(minutes=1), allowed=None,
                                    last_sent=T0)
    assert batches == [] and len(skip) == 30  # within the window that already alerted
    batches, skip, back = plan_batches(threshold, rows(30), now=T0 + timedelta(minutes=6), allowed=None,
                                       last_sent=T0)
    assert batches == [] and len(skip) == 30 and back == []  # too old for the new window


def test_every_field_of_a_rules_filter_survives_its_storage() -> None:
    """A rule's filter is stored as JSON: each of CommentFilter's fields comes back as it went in,
    so a field added to the filter (the rule language's query, the workflow's) cannot be lost."""
    from domain.alert_model import filter_from_json, filter_to_json
    from domain.models import CommentStatus

    full = CommentFilter(
        group_ids=(1, 2), post_ids=(3,), keyword_ids=(4,), author_ids=(-5, 6), matched=True, text="кот",
        since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 2, 1, tzinfo=UTC), viewed=False,
        archived=True, deleted=False, edited=True, query='(кошка OR кот) AND корм NOT "продам"',
        statuses=(CommentStatus.NEW, CommentStatus.DONE), assignees=("Анна",), tags=("срочно", "доставка"),
    )
    unset = [name for name in CommentFilter.__dataclass_fields__ if getattr(full, name) is None]
    assert unset == []  # the example sets every field
    assert filter_from_json(filter_to_json(full)) == full
    assert filter_from_json(filter_to_json(CommentFilter())) == CommentFilter()
