"""What a task says it is doing, as a code with arguments and as today's English sentence.

Handlers report ``Say`` values: ``Say.posts_read(40, 40, 1211)`` is the message
``POSTS_READ {done: 40, total: 40, comments: 1211}``, and as the ``str`` it is, the English sentence
logs, ``Task.progress.message`` and the API's ``Progress.message`` have always carried
("40/40 posts, 1211 comments"). The console words the code and arguments in the operator's
language instead (``Progress.messageCode`` / ``messageArgs``).

Only the sentence is stored (``tasks.progress_message``) and published: ``read`` turns a stored
sentence back into its code and arguments through the same table that wrote it, so a task read
from the database, from an event or from a row written before codes existed says the same.
A sentence no code wrote (free text from elsewhere) reads as no code: the console shows the
text as it is. ``tests/unit/test_progress_messages.py`` holds every code to that round trip.

To add a message: a ``MessageCode``, a ``_Form`` in ``_FORMS`` whose pattern reads back exactly
what its ``text`` writes, a ``Say`` constructor, and its wording in the console (``web/src/i18n.ts``;
the console's build fails on a code it cannot word).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

Args = Mapping[str, int | str]


class MessageCode(StrEnum):
    READING_WALL = "READING_WALL"  # a parse lists the community's posts
    POSTS_TO_READ = "POSTS_TO_READ"  # posts listed, how many need their comments read
    POSTS_READ = "POSTS_READ"  # posts read so far, comments stored
    COMMENTS_CHECKED = "COMMENTS_CHECKED"  # an analyze: comments matched so far
    ROWS_WRITTEN = "ROWS_WRITTEN"  # an export: rows written so far
    FINISHING_FILE = "FINISHING_FILE"  # an export closes its file
    FILE_WRITTEN = "FILE_WRITTEN"  # an export's file is ready
    RETRYING = "RETRYING"  # a dependency failed; the task runs again from what is stored
    WAITING_FOR_VK = "WAITING_FOR_VK"  # every VK token rests: the task waits (QUEUED) until one is back


@dataclass(frozen=True)
class _Form:
    text: Callable[[Args], str]
    pattern: re.Pattern[str]
    ints: tuple[str, ...] = ()  # the arguments that are numbers (the rest are text)
    words: Mapping[str, Mapping[str, str]] | None = None  # argument -> {its words in the text: its value}


_WAIT_WORDS = {"QUOTA": "is over its daily quota", "CAPTCHA": "needs a captcha solved"}


def _n(value: str) -> int:
    return int(value.replace(",", ""))


_FORMS: dict[MessageCode, _Form] = {
    MessageCode.READING_WALL: _Form(lambda a: "reading the wall", re.compile(r"reading the wall")),
    MessageCode.POSTS_TO_READ: _Form(
        lambda a: f"{a['posts']} posts, {a['toRead']} to read",
        re.compile(r"(?P<posts>\d+) posts, (?P<toRead>\d+) to read"),
        ("posts", "toRead"),
    ),
    MessageCode.POSTS_READ: _Form(
        lambda a: f"{a['done']}/{a['total']} posts, {a['comments']} comments",
        re.compile(r"(?P<done>\d+)/(?P<total>\d+) posts, (?P<comments>\d+) comments"),
        ("done", "total", "comments"),
    ),
    # An analyze starts with "0/N comments" and goes on with how many matched.
    MessageCode.COMMENTS_CHECKED: _Form(
        lambda a: f"{a['done']}/{a['total']} comments" + (f", {a['matched']} matched" if "matched" in a else ""),
        re.compile(r"(?P<done>\d+)/(?P<total>\d+) comments(?:, (?P<matched>\d+) matched)?"),
        ("done", "total", "matched"),
    ),
    MessageCode.ROWS_WRITTEN: _Form(
        lambda a: f"{a['done']}/{a['total']} rows",
        re.compile(r"(?P<done>\d+)/(?P<total>\d+) rows"),
        ("done", "total"),
    ),
    MessageCode.FINISHING_FILE: _Form(lambda a: "finishing the file", re.compile(r"finishing the file")),
    # "12,345 comments written to <file> (1.2 MB)": size as people read it (domain.export.human_size).
    MessageCode.FILE_WRITTEN: _Form(
        lambda a: f"{a['rows']:,} comment{'' if a['rows'] == 1 else 's'} written to {a['file']} ({a['size']})",
        re.compile(r"(?P<rows>\d{1,3}(?:,\d{3})*) comments? written to (?P<file>.+) \((?P<size>[^()]+)\)"),
        ("rows",),
    ),
    # The error is the domain's English message (DomainError.message): it stays as it is.
    MessageCode.RETRYING: _Form(lambda a: f"retrying: {a['error']}", re.compile(r"retrying: (?P<error>.*)", re.DOTALL)),
    # "waiting for VK: every token is over its daily quota until 00:00 UTC": `until` in UTC, "HH:MM"
    # today or "YYYY-MM-DD HH:MM" (Task.waitingUntil has the exact time); `reason` QUOTA or CAPTCHA.
    MessageCode.WAITING_FOR_VK: _Form(
        lambda a: f"waiting for VK: every token {_WAIT_WORDS[str(a['reason'])]} until {a['until']} UTC",
        re.compile(
            r"waiting for VK: every token (?P<reason>.+) until (?P<until>(?:\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}) UTC"
        ),
        words={"reason": {words: reason for reason, words in _WAIT_WORDS.items()}},
    ),
}


class Say(str):
    """One progress message: a ``str`` (its English sentence, so every reader of a message as
    text goes on reading it) that also carries its code and arguments."""

    code: MessageCode
    args: Args

    def __new__(cls, code: MessageCode, args: Args | None = None) -> Self:
        args = dict(args or {})
        said = super().__new__(cls, _FORMS[code].text(args))
        said.code, said.args = code, args
        return said

    def __getnewargs__(self) -> tuple[MessageCode, dict[str, int | str]]:  # type: ignore[override]  # copy, pickle
        return self.code, dict(self.args)

    def __repr__(self) -> str:
        return f"Say({self.code.value}, {dict(self.args)!r})"

    @classmethod
    def reading_wall(cls) -> Say:
        return cls(MessageCode.READING_WALL)

    @classmethod
    def posts_to_read(cls, posts: int, to_read: int) -> Say:
        return cls(MessageCode.POSTS_TO_READ, {"posts": posts, "toRead": to_read})

    @classmethod
    def posts_read(cls, done: int, total: int, comments: int) -> Say:
        return cls(MessageCode.POSTS_READ, {"done": done, "total": total, "comments": comments})

    @classmethod
    def comments_checked(cls, done: int, total: int, matched: int | None = None) -> Say:
        args: dict[str, int | str] = {"done": done, "total": total}
        if matched is not None:
            args["matched"] = matched
        return cls(MessageCode.COMMENTS_CHECKED, args)

    @classmethod
    def rows_written(cls, done: int, total: int) -> Say:
        return cls(MessageCode.ROWS_WRITTEN, {"done": done, "total": total})

    @classmethod
    def finishing_file(cls) -> Say:
        return cls(MessageCode.FINISHING_FILE)

    @classmethod
    def file_written(cls, rows: int, file: str, size: str) -> Say:
        return cls(MessageCode.FILE_WRITTEN, {"rows": rows, "file": file, "size": size})

    @classmethod
    def retrying(cls, error: str) -> Say:
        return cls(MessageCode.RETRYING, {"error": error})

    @classmethod
    def waiting_for_vk(cls, until: datetime, now: datetime, *, captcha: bool = False) -> Say:
        """Every token rests until ``until``: the time in UTC, with its date when not today's."""
        until, now = until.astimezone(UTC), now.astimezone(UTC)
        when = f"{until:%H:%M}" if until.date() == now.date() else f"{until:%Y-%m-%d %H:%M}"
        return cls(MessageCode.WAITING_FOR_VK, {"reason": "CAPTCHA" if captcha else "QUOTA", "until": when})


def read(message: str) -> Say | None:
    """The code and arguments a stored sentence was written from; None for any other text."""
    if isinstance(message, Say):
        return message
    for code, form in _FORMS.items():
        found = form.pattern.fullmatch(message)
        if found:
            args: dict[str, Any] = {
                name: _n(value) if name in form.ints else value
                for name, value in found.groupdict().items()
                if value is not None
            }
            for name, values in (form.words or {}).items():
                if args.get(name) not in values:
                    break  # words no code wrote
                args[name] = values[args[name]]
            else:
                return Say(code, args)
    return None
