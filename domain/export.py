"""How an export works: the comments a ``CommentFilter`` selects, streamed into a file.

Rows are read in batches by comment id (a keyset: never OFFSET, never the whole result in
memory) and handed to a format writer batch by batch, with progress after each. The file is
written under a temporary name and published only when complete, so a download never sees half
a file; a cancelled or failed export leaves nothing behind. The task's result is
``{"url": "/exports/<file>", "rows": N, "format": ..., "file": ..., "fileName": ..., "bytes": ...}``
(``file`` is the stored name, ``fileName`` the one a browser saves it as), and its last progress
message says what was written; files expire after a configured time.

The rows are exactly those the ``comments`` query returns for the same filter (the same SQL
conditions), so an export's row count equals that query's ``totalCount``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from domain.errors import InvalidInput
from domain.models import Task, TaskKind
from domain.ports import Adapters, ProgressCallback
from domain.queries import CommentFilter

EXPORT_BATCH = 1000  # rows per read and write round
VK = "https://vk.com"


class ExportFormat(enum.StrEnum):
    CSV = "CSV"
    XLSX = "XLSX"
    JSONL = "JSONL"


@dataclass(frozen=True)
class ExportRow:
    """One exported comment with what a reader of the file needs around it."""

    comment_id: int
    vk_id: int
    owner_id: int
    post_vk_id: int
    group_id: int
    group_name: str
    group_screen_name: str
    author_id: int
    author_name: str | None
    author_screen_name: str | None
    published_at: datetime
    text: str
    likes: int
    deleted: bool
    reply_to_vk_id: int | None  # the comment this one answers, VK id on the same wall
    thread_vk_id: int | None
    matches_count: int
    keywords: tuple[str, ...]  # the matched keywords' words, sorted
    viewed: bool
    archived: bool

    @property
    def comment_url(self) -> str:
        return f"{VK}/wall{self.owner_id}_{self.post_vk_id}?reply={self.vk_id}"

    @property
    def post_url(self) -> str:
        return f"{VK}/wall{self.owner_id}_{self.post_vk_id}"

    @property
    def group_url(self) -> str:
        return f"{VK}/{self.group_screen_name}" if self.group_screen_name else f"{VK}/club{-self.owner_id}"

    @property
    def author_url(self) -> str:
        if self.author_screen_name:
            return f"{VK}/{self.author_screen_name}"
        return f"{VK}/id{self.author_id}" if self.author_id > 0 else f"{VK}/club{-self.author_id}"

    def values(self) -> tuple[Any, ...]:
        """The row's values in ``EXPORT_COLUMNS`` order."""
        return (
            self.comment_id, self.vk_id, self.comment_url, self.published_at, self.text, self.likes,
            self.deleted, self.reply_to_vk_id, self.thread_vk_id, self.matches_count, list(self.keywords),
            self.author_id, self.author_name, self.author_url,
            self.group_id, self.group_name, self.group_url, self.post_vk_id, self.post_url, self.owner_id,
            self.viewed, self.archived,
        )  # fmt: skip

    def as_record(self) -> dict[str, Any]:
        """The row as named values (a JSON Lines object)."""
        return dict(zip(EXPORT_COLUMNS, self.values(), strict=True))


EXPORT_COLUMNS = (
    "commentId", "commentVkId", "commentUrl", "publishedAt", "text", "likes",
    "deleted", "replyToVkId", "threadVkId", "matchesCount", "keywords",
    "authorId", "authorName", "authorUrl",
    "groupId", "groupName", "groupUrl", "postVkId", "postUrl", "ownerId",
    "viewed", "archived",
)  # fmt: skip
"""Column names: CSV and XLSX headers, JSON Lines keys."""


class ExportFile(Protocol):
    """A file being written; invisible to downloads until ``finish``."""

    name: str  # the stored name, in the download URL
    download_name: str  # the name a browser saves it as

    def write(self, rows: Sequence[ExportRow]) -> None: ...

    def finish(self) -> int:
        """Complete the file and publish it under ``name``; returns its size in bytes."""

    def discard(self) -> None:
        """Remove the file, whether it was published already or not."""


class ExportStore(Protocol):
    """Rows to export (read side) and the files they go to."""

    async def count(self, flt: CommentFilter) -> int: ...

    async def rows(self, flt: CommentFilter, *, after_id: int, limit: int) -> list[ExportRow]:
        """Up to ``limit`` rows with comment id above ``after_id``, in id order."""

    def create(self, fmt: ExportFormat) -> ExportFile: ...

    def purge_expired(self) -> int:
        """Delete files older than the configured lifetime; returns how many."""


# --- filters as task params (JSON) ----------------------------------------------------------

_ID_LISTS = {"groupIds": "group_ids", "postIds": "post_ids", "keywordIds": "keyword_ids", "authorIds": "author_ids"}
_FLAGS = {"matched": "matched", "viewed": "viewed", "archived": "archived"}


def filter_to_params(flt: CommentFilter) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, name in _ID_LISTS.items():
        if (value := getattr(flt, name)) is not None:
            params[key] = list(value)
    for key, name in _FLAGS.items():
        if (value := getattr(flt, name)) is not None:
            params[key] = value
    if flt.text is not None:
        params["text"] = flt.text
    for key in ("since", "until"):
        if (value := getattr(flt, key)) is not None:
            params[key] = value.isoformat()
    return params


def filter_from_params(params: dict[str, Any]) -> CommentFilter:
    values: dict[str, Any] = {}
    for key, name in _ID_LISTS.items():
        if params.get(key) is not None:
            values[name] = tuple(params[key])
    for key, name in _FLAGS.items():
        if params.get(key) is not None:
            values[name] = params[key]
    if params.get("text") is not None:
        values["text"] = params["text"]
    for key in ("since", "until"):
        if params.get(key) is not None:
            values[key] = datetime.fromisoformat(params[key])
    return CommentFilter(**values)


# --- use case and job -----------------------------------------------------------------------


async def start_export(
    adapters: Adapters, flt: CommentFilter, fmt: ExportFormat | str, *, priority: int = 5
) -> Task:
    from domain.tasks import start_task  # tasks imports this module for its handler

    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        raise InvalidInput(f"Unknown export format {fmt!r}", field="format") from None
    params = {"format": fmt.value, "filter": filter_to_params(flt)}
    return await start_task(adapters, TaskKind.EXPORT, params, priority=priority)


async def run_export(adapters: Adapters, task: Task, report: ProgressCallback) -> dict:
    store = adapters.exports
    if store is None:
        raise InvalidInput("Exports are not configured")
    fmt = ExportFormat(task.params.get("format", ExportFormat.CSV))
    flt = filter_from_params(task.params.get("filter") or {})
    await asyncio.to_thread(store.purge_expired)
    total = await store.count(flt)
    await report(0, total, f"0/{total} rows")
    file = await asyncio.to_thread(store.create, fmt)
    done = 0
    after_id = 0
    try:
        while True:
            rows = await store.rows(flt, after_id=after_id, limit=EXPORT_BATCH)
            if not rows:
                break
            await asyncio.to_thread(file.write, rows)
            done += len(rows)
            after_id = rows[-1].comment_id
            total = max(total, done)  # comments stored since the count are exported too
            await report(done, total, f"{done}/{total} rows")
        await report(done, done, "finishing the file")
        size = await asyncio.to_thread(file.finish)
        # The last report can still be a cancel: the except below removes the published file.
        await report(done, done, written_message(done, file.download_name, size))
    except BaseException:  # failed or cancelled (TaskCancelled, an aborted job): no file left
        await asyncio.to_thread(file.discard)
        raise
    return {
        "url": f"/exports/{file.name}", "rows": done, "format": fmt.value, "file": file.name,
        "fileName": file.download_name, "bytes": size,
    }  # fmt: skip


def written_message(rows: int, file_name: str, size: int) -> str:
    """What a finished export says it did: "12,345 comments written to <file> (1.2 MB)"."""
    return f"{rows:,} comment{'' if rows == 1 else 's'} written to {file_name} ({human_size(size)})"


def human_size(size: int) -> str:
    """Bytes for people, in decimal units as file managers show them: 812 bytes, 1.2 MB."""
    if size < 1000:
        return f"{size} byte{'' if size == 1 else 's'}"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 999.95:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} TB"
