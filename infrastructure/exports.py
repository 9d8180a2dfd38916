"""Exports: the rows (one SQL query per batch) and the files (CSV or TSV, XLSX, JSON Lines).

Implements ``domain.ports.ExportStore``. Every writer streams: CSV and JSON Lines write each
batch straight to the file; XLSX uses xlsxwriter's ``constant_memory`` mode, which flushes each
row to a temporary file as soon as the next one starts. Memory therefore does not grow with
the number of rows.

The XLSX file is for people: header titles, the header row frozen with a filter on it, column
widths that fit (capped, the text wrapped), dates as real dates in the export's time zone, and
links that open on a click. The links are ``HYPERLINK`` formulas, not the sheet's hyperlink
table: xlsxwriter keeps every table entry in memory until the file is closed, and a sheet may
hold only 65,530 of them (an export of 20,000 comments has 80,000 links), while a formula
streams like any other cell and has no such limit.

Files are written as ``<name>.partial`` and renamed when complete. Names carry 128 random bits:
a link cannot be guessed, and the download route still requires a token or a signed link.
Browsers save a file under a shorter name without them (``download_name``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import secrets
import stat
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import xlsxwriter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.export import TIME_COLUMNS, column_titles
from domain.ports import EXPORT_COLUMNS, CsvDelimiter, ExportDownload, ExportFormat, ExportOptions, ExportRow
from domain.queries import CommentFilter
from domain.rules import QueryCompiler, QueryMatcher
from infrastructure.db.bulk import in_values
from infrastructure.db.filters import comment_conditions
from infrastructure.db.rules import rule_compiler
from infrastructure.db.tables import authors, comments, groups, keywords, matches
from infrastructure.xlsx_compat import LINK_FORMULA, LinkSheet

EXTENSIONS = {ExportFormat.CSV: "csv", ExportFormat.XLSX: "xlsx", ExportFormat.JSONL: "jsonl"}
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/x-ndjson; charset=utf-8",
}
# What a finished export's name looks like; anything else is refused before touching the disk.
SAFE_NAME = re.compile(r"comments-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})\d{2}-[A-Za-z0-9_-]{22}\.(csv|tsv|xlsx|jsonl)")
PARTIAL = ".partial"

XLSX_MAX_ROWS = 1_048_576  # per worksheet, header included
XLSX_MAX_CELL = 32_767  # characters per cell
# A spreadsheet runs a CSV cell starting with these as a formula ("CSV injection"); comment
# text is written by strangers, so such cells get a leading apostrophe, as OWASP advises.
_QUERY_BATCH = 5000  # candidates read at once when a query decides
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class FileExportStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], directory: Path, *, ttl_hours: float) -> None:
        self._sessions = sessions
        self._dialect = sessions.kw["bind"].dialect.name
        self.directory = Path(directory)
        self.ttl_seconds = ttl_hours * 3600
        self._queries: QueryCompiler | None = None  # made on the first export with a query

    # --- rows ---

    async def _compiled(self, flt: CommentFilter) -> QueryMatcher | None:
        if flt.query is None:
            return None
        if self._queries is None:
            self._queries = rule_compiler(self._sessions)
        return await self._queries.compile(flt.query)

    async def count(self, flt: CommentFilter) -> int:
        matcher = await self._compiled(flt)
        if matcher is not None:  # the candidates' texts, each decided by the matcher
            count, after_id = 0, 0
            while True:
                query = (
                    select(comments.c.id, comments.c.text)
                    .where(comments.c.id > after_id, *comment_conditions(flt, self._dialect, matcher))
                    .order_by(comments.c.id)
                    .limit(_QUERY_BATCH)
                )
                async with self._sessions() as session:
                    found = (await session.execute(query)).all()
                count += sum(1 for row in found if matcher.matches(row.text))
                if len(found) < _QUERY_BATCH:
                    return count
                after_id = found[-1].id
        counted = select(func.count()).select_from(comments).where(*comment_conditions(flt, self._dialect))
        async with self._sessions() as session:
            return (await session.execute(counted)).scalar_one()

    async def rows(self, flt: CommentFilter, *, after_id: int, limit: int) -> list[ExportRow]:
        """``limit`` rows after ``after_id``; with a query, fewer may come back (candidates the
        matcher refused), and an empty list only at the end."""
        matcher = await self._compiled(flt)
        while True:
            rows, last_id = await self._rows(flt, matcher, after_id=after_id, limit=limit)
            if rows or last_id is None:
                return rows
            after_id = last_id

    async def _rows(
        self, flt: CommentFilter, matcher: QueryMatcher | None, *, after_id: int, limit: int
    ) -> tuple[list[ExportRow], int | None]:
        """The rows after ``after_id`` that pass, and the last candidate's id when more may follow."""
        c = comments.c
        query = (
            select(
                c.id, c.vk_id, c.owner_id, c.post_vk_id, c.group_id, c.from_id, c.published_at, c.text, c.likes,
                c.deleted, c.deleted_at, c.edited_at, c.parent_vk_id, c.thread_vk_id, c.matches_count, c.viewed,
                c.archived, c.status, c.assignee, c.tags, c.note,
                groups.c.name.label("group_name"), groups.c.screen_name.label("group_screen_name"),
                authors.c.name.label("author_name"), authors.c.screen_name.label("author_screen_name"),
            )
            .select_from(
                comments.join(groups, groups.c.id == c.group_id).outerjoin(authors, authors.c.vk_id == c.from_id)
            )
            .where(c.id > after_id, *comment_conditions(flt, self._dialect, matcher))
            .order_by(c.id)
            .limit(limit)
        )
        async with self._sessions() as session:
            found = (await session.execute(query)).mappings().all()
            last_id = found[-1]["id"] if len(found) == limit else None
            if matcher is not None:
                found = [row for row in found if matcher.matches(row["text"])]
            words: dict[int, list[str]] = {}
            ids = [row["id"] for row in found if row["matches_count"]]
            if ids:
                matched = (
                    select(matches.c.comment_id, keywords.c.word)
                    .join(keywords, keywords.c.id == matches.c.keyword_id)
                    .where(in_values(self._dialect, matches.c.comment_id, ids))  # one statement for any page
                    .distinct()
                )
                for comment_id, word in await session.execute(matched):
                    words.setdefault(comment_id, []).append(word)
        return [
            ExportRow(
                comment_id=row["id"],
                vk_id=row["vk_id"],
                owner_id=row["owner_id"],
                post_vk_id=row["post_vk_id"],
                group_id=row["group_id"],
                group_name=row["group_name"],
                group_screen_name=row["group_screen_name"],
                author_id=row["from_id"],
                author_name=row["author_name"],
                author_screen_name=row["author_screen_name"],
                published_at=row["published_at"],
                text=row["text"],
                likes=row["likes"],
                deleted=row["deleted"],
                deleted_at=row["deleted_at"],
                edited_at=row["edited_at"],
                reply_to_vk_id=row["parent_vk_id"],
                thread_vk_id=row["thread_vk_id"],
                matches_count=row["matches_count"],
                keywords=tuple(sorted(words.get(row["id"], ()))),
                viewed=row["viewed"],
                archived=row["archived"],
                status=row["status"],
                assignee=row["assignee"],
                tags=tuple(row["tags"]),
                note=row["note"],
            )
            for row in found
        ], last_id

    # --- files ---

    def create(self, options: ExportOptions) -> _ExportFile:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        tab_separated = options.format is ExportFormat.CSV and options.delimiter is CsvDelimiter.TAB
        extension = "tsv" if tab_separated else EXTENSIONS[options.format]
        name = f"comments-{stamp}-{secrets.token_urlsafe(16)}.{extension}"
        writer = {ExportFormat.CSV: _CsvFile, ExportFormat.XLSX: _XlsxFile, ExportFormat.JSONL: _JsonLinesFile}
        return writer[options.format](self.directory, name, options)

    def path_of(self, name: str) -> Path | None:
        """The finished, unexpired export called ``name``; None for anything else."""
        expires_at = self.expires_at(name)
        return self.directory / name if expires_at is not None and expires_at.timestamp() >= time.time() else None

    def download(self, name: str) -> ExportDownload | None:
        path = self.path_of(name)
        return ExportDownload(path, media_type(name), download_name(name)) if path is not None else None

    def expires_at(self, name: str) -> datetime | None:
        """When the finished export ``name`` expires; None when there is no such file."""
        if not SAFE_NAME.fullmatch(name):
            return None
        path = self.directory / name
        try:
            found = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        return datetime.fromtimestamp(found.st_mtime + self.ttl_seconds, UTC)

    def purge_expired(self) -> int:
        if not self.directory.is_dir():
            return 0
        cutoff = time.time() - self.ttl_seconds
        removed = 0
        for path in self.directory.iterdir():
            name = path.name.removesuffix(PARTIAL)
            if not SAFE_NAME.fullmatch(name):
                continue  # not ours
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")


def download_name(name: str) -> str:
    """The name a browser saves the export ``name`` as: its date and time, no random part
    (``comments-2026-11-30-1534.xlsx``)."""
    found = SAFE_NAME.fullmatch(name)
    if found is None:
        return name
    year, month, day, hour, minute, ext = found.groups()
    return f"comments-{year}-{month}-{day}-{hour}{minute}.{ext}"


# --- writers --------------------------------------------------------------------------------


def _iso(value: datetime) -> str:
    """ISO 8601 with the offset, to the second (VK times have no fractions)."""
    return value.isoformat(timespec="seconds")


class _ExportFile:
    def __init__(self, directory: Path, name: str, options: ExportOptions) -> None:
        self.name = name
        self.download_name = download_name(name)
        self.path = directory / name
        self.partial = directory / (name + PARTIAL)
        self.zone: ZoneInfo = options.time_zone
        self._closed = False

    def write(self, rows: Sequence[ExportRow]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _close_once(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def finish(self) -> int:
        self._close_once()
        self.partial.replace(self.path)
        return self.path.stat().st_size

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # the file may be half-written: closing may fail too
            self._close_once()
        self.partial.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)  # cancelled after it was published


class _CsvFile(_ExportFile):
    """UTF-8 with a byte order mark: Excel then reads Cyrillic right. A cell holding the
    delimiter, a quote or a line break is quoted, whichever delimiter was chosen."""

    def __init__(self, directory: Path, name: str, options: ExportOptions) -> None:
        super().__init__(directory, name, options)
        self._file: TextIO = open(self.partial, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._file, delimiter=options.delimiter.value, quoting=csv.QUOTE_MINIMAL)
        self._csv.writerow(EXPORT_COLUMNS)

    def write(self, rows: Sequence[ExportRow]) -> None:
        self._csv.writerows([[_csv_cell(v) for v in row.values(self.zone)] for row in rows])

    def _close(self) -> None:
        self._file.close()


def _csv_cell(value: Any) -> Any:
    """A value as a flat cell: lists joined, times in ISO 8601, None empty, booleans as words."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = ", ".join(value)
    elif isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class _JsonLinesFile(_ExportFile):
    def __init__(self, directory: Path, name: str, options: ExportOptions) -> None:
        super().__init__(directory, name, options)
        self._file: TextIO = open(self.partial, "w", encoding="utf-8", newline="\n")  # noqa: SIM115

    def write(self, rows: Sequence[ExportRow]) -> None:
        self._file.writelines(
            json.dumps(dict(zip(EXPORT_COLUMNS, row.values(self.zone), strict=True)), ensure_ascii=False,
                       default=_json_default) + "\n"
            for row in rows
        )

    def _close(self) -> None:
        self._file.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# XLSX column widths, in characters of the default font: (least, most). A column is as wide as
# its widest value or its title (plus room for the filter button), within these bounds.
_TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_FILTER_BUTTON = 3  # characters the header's filter button covers
_WIDTHS: dict[str, tuple[int, int]] = {
    **{name: (len(_TIME_FORMAT) + 2, 40) for name in TIME_COLUMNS},  # room for every date: never ####
    "text": (70, 70),  # wrapped: long comments grow downwards, not off the screen
    "keywords": (10, 30),
    "authorName": (10, 30),
    "groupName": (10, 40),
    "commentUrl": (20, 60),
    "authorUrl": (20, 45),
    "groupUrl": (20, 45),
    "postUrl": (20, 50),
    "status": (11, 13),
    "assignee": (10, 30),
    "tags": (10, 30),
    "note": (20, 50),
}
_DEFAULT_WIDTH = (6, 20)  # numbers and flags
_WRAPPED = frozenset({"text", "keywords", "authorName", "groupName", "assignee", "tags", "note"})
_LINKS = frozenset({"commentUrl", "authorUrl", "groupUrl", "postUrl"})
_MAX_LINK = 255  # HYPERLINK's limit for its target




class _XlsxFile(_ExportFile):
    """constant_memory: rows go to disk as they are written, strings inline (no shared table).

    Every string goes through ``write_string``: ``write`` would turn "=..." into a formula and
    "http..." into one of the 65,530 links a sheet may hold. Column widths are settled when a
    sheet is complete (xlsxwriter writes them at close), from the widest value seen.
    """

    def __init__(self, directory: Path, name: str, options: ExportOptions) -> None:
        super().__init__(directory, name, options)
        self._book = xlsxwriter.Workbook(
            str(self.partial), {"constant_memory": True, "strings_to_urls": False, "remove_timezone": True}
        )
        top = {"valign": "top"}
        self._header = self._book.add_format({"bold": True, "valign": "top", "bg_color": "#F2F2F2", "bottom": 1})
        self._plain = self._book.add_format(top)
        self._wrap = self._book.add_format({**top, "text_wrap": True})
        self._time = self._book.add_format({**top, "num_format": _TIME_FORMAT})
        self._link = self._book.add_format({**top, "font_color": "#0563C1", "underline": 1})
        self._titles = column_titles(self.zone)
        self._kinds = [
            "time" if c in TIME_COLUMNS else "link" if c in _LINKS else "wrap" if c in _WRAPPED else "plain"
            for c in EXPORT_COLUMNS
        ]
        self._sheets = 0
        self._row = 0
        self._widest: list[int] = []
        self._sheet = self._add_sheet()

    def _new_sheet(self) -> None:
        self._settle_sheet()
        self._sheet = self._add_sheet()

    def _add_sheet(self) -> LinkSheet:
        self._sheets += 1
        name = "comments" if self._sheets == 1 else f"comments {self._sheets}"
        sheet = self._book.add_worksheet(name, worksheet_class=LinkSheet)
        sheet.freeze_panes(1, 0)
        for col, title in enumerate(self._titles):
            sheet.write_string(0, col, title, self._header)
        self._widest = [len(title) + _FILTER_BUTTON for title in self._titles]
        self._row = 1
        return sheet

    def _settle_sheet(self) -> None:
        """Widths and the header's filter over the rows written: both are stored, not streamed."""
        sheet = self._sheet
        for col, name in enumerate(EXPORT_COLUMNS):
            least, most = _WIDTHS.get(name, _DEFAULT_WIDTH)
            width = max(least, min(self._widest[col] + 1, most))
            sheet.set_column(col, col, width)
        sheet.autofilter(0, 0, self._row - 1, len(EXPORT_COLUMNS) - 1)

    def write(self, rows: Sequence[ExportRow]) -> None:
        widest, kinds = self._widest, self._kinds
        for row in rows:
            if self._row >= XLSX_MAX_ROWS:
                self._new_sheet()
                widest = self._widest
            sheet, r = self._sheet, self._row
            for col, value in enumerate(row.values(self.zone)):
                if value is None:
                    continue
                kind = kinds[col]
                if isinstance(value, bool):
                    sheet.write_boolean(r, col, value, self._plain)
                    continue
                if isinstance(value, int):
                    sheet.write_number(r, col, value, self._plain)
                    size = len(str(value))
                elif kind == "time":
                    sheet.write_datetime(r, col, value.replace(tzinfo=None), self._time)
                    continue
                elif kind == "link" and len(value) <= _MAX_LINK:
                    quoted = value.replace('"', '""')
                    sheet.write_formula(r, col, f'{LINK_FORMULA}{quoted}","{quoted}")', self._link, value)
                    size = len(value)
                else:
                    text = ", ".join(value) if isinstance(value, list) else value
                    if not text:
                        continue
                    sheet.write_string(r, col, text[:XLSX_MAX_CELL], self._wrap if kind == "wrap" else self._plain)
                    size = len(text)
                if size > widest[col]:
                    widest[col] = size
            self._row += 1

    def _close(self) -> None:
        self._settle_sheet()
        self._book.close()
