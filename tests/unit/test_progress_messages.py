"""Progress messages: a code with arguments for a console to word in its language, and the same
English sentence as before for logs and ``Progress.message``; a stored sentence reads back to
its code and arguments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain import progress
from domain.export import written_message
from domain.models import Progress as DomainProgress
from domain.progress import MessageCode, Say
from graphql_api.tasks import Progress, ProgressMessageCode

EXAMPLES: list[tuple[Say, str]] = [
    (Say.reading_wall(), "reading the wall"),
    (Say.posts_to_read(40, 12), "40 posts, 12 to read"),
    (Say.posts_read(40, 40, 1211), "40/40 posts, 1211 comments"),
    (Say.posts_read(0, 0, 0), "0/0 posts, 0 comments"),
    (Say.comments_checked(0, 5000), "0/5000 comments"),
    (Say.comments_checked(1200, 5000, 37), "1200/5000 comments, 37 matched"),
    (Say.rows_written(500, 2100), "500/2100 rows"),
    (Say.finishing_file(), "finishing the file"),
    (written_message(12_345, "comments-2026-11-30-1534.xlsx", 1_234_567),
     "12,345 comments written to comments-2026-11-30-1534.xlsx (1.2 MB)"),
    (written_message(1, "c (2).csv", 90), "1 comment written to c (2).csv (90 bytes)"),
    (written_message(1_000_000, "c.jsonl", 3 * 10**9), "1,000,000 comments written to c.jsonl (3.0 GB)"),
    (Say.retrying("VK is unavailable: HTTP 502"), "retrying: VK is unavailable: HTTP 502"),
    (Say.retrying("database unavailable:\nconnection reset"), "retrying: database unavailable:\nconnection reset"),
    (Say.waiting_for_vk(datetime(2026, 12, 8, 0, 0, tzinfo=UTC), datetime(2026, 12, 7, 23, 1, tzinfo=UTC)),
     "waiting for VK: every token is over its daily quota until 2026-12-08 00:00 UTC"),
    (Say.waiting_for_vk(datetime(2026, 12, 7, 18, 30, tzinfo=UTC), datetime(2026, 12, 7, 18, 0, tzinfo=UTC), captcha=True),
     "waiting for VK: every token needs a captcha solved until 18:30 UTC"),
]


@pytest.mark.parametrize(("said", "text"), EXAMPLES, ids=[s.code.value + str(i) for i, (s, _) in enumerate(EXAMPLES)])
def test_a_message_is_its_english_sentence_and_reads_back_to_its_code(said: Say, text: str) -> None:
    assert said == text and str(said) == text and type(str(said)) is str  # logs, storage, `message`: unchanged
    back = progress.read(text)  # a plain str, as stored and published
    assert back is not None and (back.code, dict(back.args)) == (said.code, dict(said.args))


def test_a_message_survives_copies_as_the_fakes_and_pickles_make_them() -> None:
    import copy
    import pickle

    said = Say.posts_read(3, 40, 77)
    for again in (copy.copy(said), copy.deepcopy(said), pickle.loads(pickle.dumps(said))):
        assert again == said and (again.code, dict(again.args)) == (said.code, dict(said.args))


def test_every_code_has_an_example_and_the_api_names_the_same_codes() -> None:
    assert {s.code for s, _ in EXAMPLES} == set(MessageCode)
    assert {c.name for c in ProgressMessageCode} == {c.value for c in MessageCode}


@pytest.mark.parametrize("text", ["", "waiting", "40 posts", "waiting for VK: every token is tired until 10:00 UTC", "retrying", "12 comments written to x", "3/4 posts, many comments"])
def test_a_sentence_no_code_wrote_has_no_code(text: str) -> None:
    assert progress.read(text) is None
    shown = Progress.from_domain(DomainProgress(1, 2, text))
    assert (shown.message, shown.message_code, shown.message_args) == (text, None, None)


def test_the_api_gives_the_code_and_arguments_beside_the_sentence() -> None:
    shown = Progress.from_domain(DomainProgress(40, 40, "40/40 posts, 1211 comments"))
    assert shown.message == "40/40 posts, 1211 comments"
    assert shown.message_code is ProgressMessageCode.POSTS_READ
    assert shown.message_args == {"done": 40, "total": 40, "comments": 1211}


def test_a_task_waiting_for_vk_says_why_and_until_when_as_a_code() -> None:
    from domain.tasks import waiting_message

    now = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
    said = progress.read(str(waiting_message(datetime(2026, 12, 8, 0, 0, tzinfo=UTC), 29, now)))
    assert said is not None and said.code is MessageCode.WAITING_FOR_VK
    assert dict(said.args) == {"reason": "QUOTA", "until": "2026-12-08 00:00"}
    said = progress.read(str(waiting_message(datetime(2026, 12, 7, 19, 30, tzinfo=UTC), 14, now)))
    assert said is not None and dict(said.args) == {"reason": "CAPTCHA", "until": "19:30"}
