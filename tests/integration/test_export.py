"""The EXPORT job over the real database (SQLite and PostgreSQL) into real files."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from openpyxl.utils import get_column_letter

from domain import export
from domain.errors import TaskCancelled
from domain.export import column_titles, filter_from_params, filter_to_params, run_export
from domain.models import Author, Comment, CommentStatus, Group, Keyword, Match, Post, Task, TaskKind, WorkflowState
from domain.ports import EXPORT_COLUMNS, Adapters, ExportFormat
from domain.queries import CommentFilter
from infrastructure.db.queries import SqlReadModel
from infrastructure.exports import FileExportStore
from tests.fakes import FakeClock, no_report

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TEXTS = ["Я люблю кошек", "=HYPERLINK(\"http://evil\")", "Окошко открыто", "Собака лает", "ёжик; в \"тумане\",\tой\nвторая строка"]
FOGGY = TEXTS[4]  # a delimiter of each kind, a quote and a line break
COMMENTS = 2100  # more than two export batches


@pytest.fixture
async def world(uow_factory) -> dict:
    async with uow_factory() as uow:
        groups = [
            await uow.groups.add(Group(vk_id=11001, screen_name="koshki_spb", name="Кошки Петербурга")),
            await uow.groups.add(Group(vk_id=11002, screen_name="", name="Новости Заречья")),
        ]
        for g in groups:
            await uow.posts.upsert_many(g.id, [Post(g.owner_id, 7, g.owner_id, "пост", T0)])
        comments = [
            Comment(
                owner_id=groups[i % 2].owner_id, vk_id=i + 1, post_vk_id=7, from_id=1000 + i % 3 if i % 5 else -11001,
                text=TEXTS[i % len(TEXTS)], published_at=T0 + timedelta(minutes=i), likes=i % 4,
                parent_vk_id=i - 1 if i % 7 == 0 and i else None, thread_vk_id=i - 1 if i % 7 == 0 and i else None,
            )
            for i in range(COMMENTS)
        ]
        ids: dict = {}
        for g in groups:
            ids |= await uow.comments.upsert_many(g.id, [c for c in comments if c.owner_id == g.owner_id])
        cat = await uow.keywords.add(Keyword(id=0, word="кошка"))
        dog = await uow.keywords.add(Keyword(id=0, word="собака"))
        found = []
        for c in comments:
            cid = ids[(c.owner_id, c.vk_id)]
            if "кошек" in c.text:
                found.append(Match(cid, cat.id, "кошек", 8, 13, c.text))
            if "Собака" in c.text:
                found += [Match(cid, dog.id, "Собака", 0, 6, c.text), Match(cid, cat.id, "лает", 7, 11, c.text)]
        await uow.matches.replace_for_comments(list(ids.values()), found)
        await uow.authors.upsert_many([Author(1001, "Анна Иванова", "anna"), Author(1002, "Bob")])
        await uow.commit()
    return {"groups": groups, "cat": cat, "dog": dog, "ids": ids}


@pytest.fixture
def store(migrated_db, tmp_path: Path) -> FileExportStore:
    return FileExportStore(migrated_db[1], tmp_path / "exports", ttl_hours=1)


@pytest.fixture
def adapters(uow_factory, store) -> Adapters:
    return Adapters(uow_factory=uow_factory, vk=None, queue=None, events=None, clock=FakeClock(), exports=store)  # type: ignore[arg-type]


async def do_export(
    adapters: Adapters, flt: CommentFilter, fmt: ExportFormat, report=no_report, **options
) -> tuple[dict, Path]:
    task = Task(kind=TaskKind.EXPORT, params={"format": fmt.value, "filter": filter_to_params(flt), **options}, id=1)
    result = await run_export(adapters, task, report)
    assert result["url"] == f"/exports/{result['file']}" and result["format"] == fmt.value
    path = adapters.exports.path_of(result["file"])
    assert path is not None
    return result, path


async def test_row_counts_equal_the_comments_query_for_the_same_filter(world, adapters, migrated_db) -> None:
    reads = SqlReadModel(migrated_db[1])
    g1 = world["groups"][0]
    filters = [
        CommentFilter(),
        CommentFilter(group_ids=(g1.id,)),
        CommentFilter(keyword_ids=(world["cat"].id,)),
        CommentFilter(matched=False, author_ids=(1001, 1002)),
        CommentFilter(text="кошек", since=T0 + timedelta(minutes=100)),
        CommentFilter(group_ids=()),
    ]
    for flt in filters:
        result, path = await do_export(adapters, flt, ExportFormat.JSONL)
        expected = await reads.comments_count(flt)
        lines = path.read_text(encoding="utf-8").splitlines()
        assert result["rows"] == len(lines) == expected, flt
    assert (await reads.comments_count(CommentFilter())) == COMMENTS


async def test_jsonl_rows_carry_group_post_author_keywords_and_links(world, adapters) -> None:
    g1 = world["groups"][0]
    _, path = await do_export(adapters, CommentFilter(group_ids=(world["groups"][1].id,)), ExportFormat.JSONL)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    assert [r["commentId"] for r in rows] == sorted(r["commentId"] for r in rows)  # id order
    dog_row = next(r for r in rows if r["text"] == "Собака лает")
    assert dog_row["keywords"] == ["кошка", "собака"] and dog_row["matchesCount"] == 2
    assert dog_row["groupName"] == "Новости Заречья" and dog_row["groupUrl"] == "https://vk.com/club11002"
    assert dog_row["commentUrl"] == f"https://vk.com/wall-11002_7?reply={dog_row['commentVkId']}"
    assert dog_row["postUrl"] == "https://vk.com/wall-11002_7"
    anna = next(r for r in rows if r["authorId"] == 1001)
    assert anna["authorName"] == "Анна Иванова" and anna["authorUrl"] == "https://vk.com/anna"
    unknown = next(r for r in rows if r["authorId"] == 1000)
    assert unknown["authorName"] is None and unknown["authorUrl"] == "https://vk.com/id1000"
    assert datetime.fromisoformat(rows[0]["publishedAt"]).tzinfo is not None
    _, path = await do_export(adapters, CommentFilter(group_ids=(g1.id,)), ExportFormat.JSONL)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["groupUrl"] == "https://vk.com/koshki_spb"


async def test_csv_has_a_bom_intact_cyrillic_and_defused_formulas(world, adapters) -> None:
    result, path = await do_export(adapters, CommentFilter(), ExportFormat.CSV)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(rows) == result["rows"] == COMMENTS
    texts = {r["text"] for r in rows}
    assert {"Я люблю кошек", FOGGY} <= texts  # quoting and newlines survive
    assert "'=HYPERLINK(\"http://evil\")" in texts and "=HYPERLINK(\"http://evil\")" not in texts
    dog = next(r for r in rows if r["text"] == "Собака лает")
    assert dog["keywords"] == "кошка, собака" and dog["deleted"] == "false"


async def test_csv_times_are_iso_8601_in_the_configured_zone_with_its_offset(world, adapters) -> None:
    result, path = await do_export(adapters, CommentFilter(group_ids=(world["groups"][0].id,)), ExportFormat.CSV)
    first = next(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    assert first["publishedAt"] == "2024-05-01T15:00:00+03:00"  # 12:00 UTC in Moscow, the default
    assert result["timeZone"] == "Europe/Moscow" and result["delimiter"] == "COMMA"


@pytest.mark.parametrize(("delimiter", "char", "extension"), [("SEMICOLON", ";", "csv"), ("TAB", "\t", "tsv")])
async def test_csv_with_another_delimiter_parses_with_it(world, adapters, delimiter, char, extension) -> None:
    result, path = await do_export(
        adapters, CommentFilter(), ExportFormat.CSV, delimiter=delimiter, timeZone="Asia/Yekaterinburg"
    )
    assert path.suffix == f".{extension}" and result["fileName"].endswith(f".{extension}")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel still reads it as UTF-8
    header, *rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=char))
    assert header == list(EXPORT_COLUMNS)
    assert len(rows) == result["rows"] == COMMENTS and {len(r) for r in rows} == {len(EXPORT_COLUMNS)}
    records = [dict(zip(header, r, strict=True)) for r in rows]
    assert FOGGY in {r["text"] for r in records}  # the delimiter inside a value is quoted
    dog = next(r for r in records if r["text"] == "Собака лает")
    assert dog["keywords"] == "кошка, собака"
    assert records[0]["publishedAt"] == "2024-05-01T17:00:00+05:00"
    assert result["delimiter"] == delimiter and result["timeZone"] == "Asia/Yekaterinburg"


async def test_jsonl_times_carry_the_zones_offset(world, adapters) -> None:
    _, path = await do_export(adapters, CommentFilter(), ExportFormat.JSONL, timeZone="UTC")
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["publishedAt"] == "2024-05-01T12:00:00+00:00"
    _, path = await do_export(adapters, CommentFilter(), ExportFormat.JSONL)
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["publishedAt"] == "2024-05-01T15:00:00+03:00"


async def test_xlsx_is_a_workbook_with_cyrillic_inline_strings(world, adapters) -> None:
    result, path = await do_export(adapters, CommentFilter(keyword_ids=(world["cat"].id,)), ExportFormat.XLSX)
    with zipfile.ZipFile(path) as book:
        assert book.testzip() is None
        sheet = book.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert 'is><t>Я люблю кошек</t>' in sheet  # constant_memory writes inline strings
    assert sheet.count("<row ") == result["rows"] + 1  # a header row
    assert "<hyperlinks>" not in sheet  # links are formulas: nothing held in memory until the end


def _column(name: str) -> int:
    return EXPORT_COLUMNS.index(name) + 1


async def test_xlsx_is_ready_to_read_header_filter_widths_links_and_dates(world, adapters) -> None:
    result, path = await do_export(adapters, CommentFilter(), ExportFormat.XLSX)
    book = openpyxl.load_workbook(path)
    sheet = book["comments"]
    last = get_column_letter(len(EXPORT_COLUMNS))

    titles = [c.value for c in sheet[1]]
    assert titles == list(column_titles(ZoneInfo("Europe/Moscow")))
    assert titles[_column("publishedAt") - 1] == "Published (Europe/Moscow)"
    assert all(c.font.b for c in sheet[1])
    assert sheet.freeze_panes == "A2"  # the header stays when scrolling
    assert sheet.auto_filter.ref == f"A1:{last}{result['rows'] + 1}"
    assert sheet.max_row == COMMENTS + 1

    # Dates are dates (not text) at the zone's wall-clock time, in a column wide enough to show them.
    published = sheet.cell(2, _column("publishedAt"))
    assert published.is_date and published.value == datetime(2024, 5, 1, 15, 0)
    assert published.number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet.cell(COMMENTS + 1, _column("publishedAt")).value == datetime(2024, 5, 1, 15, 0) + timedelta(
        minutes=COMMENTS - 1
    )

    widths = {name: sheet.column_dimensions[get_column_letter(_column(name))].width for name in EXPORT_COLUMNS}
    assert widths["publishedAt"] >= len("2024-05-01 15:00:00") + 1
    assert widths["text"] >= 60 and sheet.cell(2, _column("text")).alignment.wrap_text
    for name, title in zip(EXPORT_COLUMNS, titles, strict=True):
        assert widths[name] >= len(title) + 2, name  # the title and its filter button show
        assert widths[name] <= 72, name  # nothing runs off the screen
    assert widths["commentUrl"] >= len("https://vk.com/wall-11002_7?reply=2100")

    # Links open on a click: a HYPERLINK formula whose stored value is the address itself.
    link = sheet.cell(2, _column("commentUrl"))
    url = f"https://vk.com/wall-11001_7?reply={sheet.cell(2, _column('commentVkId')).value}"
    assert link.value == f'=HYPERLINK("{url}","{url}")' and link.font.u == "single"
    for name in ("authorUrl", "groupUrl", "postUrl"):
        assert sheet.cell(2, _column(name)).value.startswith('=HYPERLINK("https://vk.com/'), name
    cached = openpyxl.load_workbook(path, data_only=True, read_only=True)["comments"]
    row = next(cached.iter_rows(min_row=2, max_row=2, values_only=True))
    assert row[_column("commentUrl") - 1] == url and row[_column("groupUrl") - 1] == "https://vk.com/koshki_spb"

    # A comment that looks like a formula stays text.
    texts = [sheet.cell(r, _column("text")) for r in range(2, 12)]
    evil = next(c for c in texts if c.value == '=HYPERLINK("http://evil")')
    assert evil.data_type == "s"


async def test_xlsx_names_the_zone_its_dates_are_in(world, adapters) -> None:
    _, path = await do_export(adapters, CommentFilter(), ExportFormat.XLSX, timeZone="Asia/Yekaterinburg")
    sheet = openpyxl.load_workbook(path, read_only=True)["comments"]
    header, first = list(sheet.iter_rows(min_row=1, max_row=2, values_only=True))
    assert header[_column("publishedAt") - 1] == "Published (Asia/Yekaterinburg)"
    assert first[_column("publishedAt") - 1] == datetime(2024, 5, 1, 17, 0)


async def test_xlsx_rows_past_a_sheets_limit_go_on_in_another_sheet_set_up_alike(world, adapters, monkeypatch) -> None:
    from infrastructure import exports

    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 1001)  # a header and 1,000 comments a sheet
    _, path = await do_export(adapters, CommentFilter(), ExportFormat.XLSX)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["comments", "comments 2", "comments 3"]
    last = get_column_letter(len(EXPORT_COLUMNS))
    for sheet, rows in zip(book.worksheets, (1000, 1000, 100), strict=True):
        assert sheet.max_row == rows + 1 and sheet.cell(1, 1).value == "Comment ID"
        assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == f"A1:{last}{rows + 1}"
        assert sheet.column_dimensions[get_column_letter(_column("publishedAt"))].width >= 20


async def test_a_cancelled_export_leaves_no_file(world, adapters, store, monkeypatch) -> None:
    monkeypatch.setattr(export, "EXPORT_BATCH", 500)

    async def cancel_later(done: int, total: int | None, message: str) -> None:
        if done >= 1000:
            raise TaskCancelled("cancelled")

    task = Task(kind=TaskKind.EXPORT, params={"format": "CSV", "filter": {}}, id=1)
    with pytest.raises(TaskCancelled):
        await run_export(adapters, task, cancel_later)
    assert list(store.directory.iterdir()) == []


async def test_a_cancel_at_the_last_step_removes_the_published_file(world, adapters, store) -> None:
    async def cancel_when_written(done: int, total: int | None, message: str) -> None:
        if "written to" in message:
            assert len(list(store.directory.iterdir())) == 1  # published already
            raise TaskCancelled("cancelled")

    task = Task(kind=TaskKind.EXPORT, params={"format": "XLSX", "filter": {}}, id=1)
    with pytest.raises(TaskCancelled):
        await run_export(adapters, task, cancel_when_written)
    assert list(store.directory.iterdir()) == []


async def test_progress_counts_rows_and_ends_saying_what_was_written(world, adapters) -> None:
    steps = []

    async def report(done: int, total: int | None, message: str) -> None:
        steps.append((done, total, message))

    result, path = await do_export(adapters, CommentFilter(), ExportFormat.CSV, report)
    assert steps[0][:2] == (0, COMMENTS) and steps[-1][:2] == (COMMENTS, COMMENTS)
    assert [d for d, _, _ in steps] == sorted(d for d, _, _ in steps) and len(steps) >= 4
    assert result["bytes"] == path.stat().st_size
    assert re.fullmatch(r"comments-\d{4}-\d{2}-\d{2}-\d{4}\.csv", result["fileName"])
    size = f"{result['bytes'] / 1000:.1f} KB"
    assert steps[-1][2] == f"2,100 comments written to {result['fileName']} ({size})"


async def test_names_are_checked_and_old_files_expire(world, adapters, store) -> None:
    _, path = await do_export(adapters, CommentFilter(group_ids=()), ExportFormat.CSV)
    for bad in ("../vkcp.sqlite3", "..", "comments.csv", path.name + ".partial", path.name.replace(".csv", ".txt")):
        assert store.path_of(bad) is None, bad
    stranger = store.directory / "notes.txt"
    stranger.write_text("not ours")
    old = time.time() - 2 * 3600
    os.utime(path, (old, old))
    assert store.path_of(path.name) is None  # expired: no longer served
    assert store.purge_expired() == 1
    assert not path.exists() and stranger.exists()


def test_filters_survive_the_task_params() -> None:
    flt = CommentFilter(
        group_ids=(1, 2), post_ids=(), keyword_ids=(3,), matched=True, text="кошка", author_ids=(-5,),
        since=T0, until=T0 + timedelta(days=1), viewed=False, archived=True,
        statuses=(CommentStatus.NEW, CommentStatus.DONE), assignees=("Анна",), tags=("срочно", "a b"),
    )
    assert filter_from_params(json.loads(json.dumps(filter_to_params(flt)))) == flt
    assert filter_from_params({}) == CommentFilter()


async def test_edits_and_deletions_are_exported_and_filtered(world, adapters, uow_factory) -> None:
    """A re-read found comment 1 edited and comment 2 deleted on VK: the ``edited`` and
    ``deleted`` filters select them, and every format says when (in the export's zone)."""
    g = world["groups"][0]  # comments 1, 3, 5... of group 0 (vk_id i + 1 for even i)
    before = datetime.now(UTC).replace(microsecond=0)  # exports write whole seconds
    async with uow_factory() as uow:
        await uow.comments.upsert_many(g.id, [
            Comment(owner_id=g.owner_id, vk_id=1, post_vk_id=7, from_id=1000, text="Я люблю кошек и собак",
                    published_at=T0),
            Comment(owner_id=g.owner_id, vk_id=3, post_vk_id=7, from_id=0, text="", published_at=T0, deleted=True),
        ])
        await uow.commit()
    after = datetime.now(UTC)

    _, path = await do_export(adapters, CommentFilter(edited=True), ExportFormat.JSONL, timeZone="UTC")
    (edited,) = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert edited["text"] == "Я люблю кошек и собак" and edited["deleted"] is False and edited["deletedAt"] is None
    assert before <= datetime.fromisoformat(edited["editedAt"]) <= after and edited["editedAt"].endswith("+00:00")

    _, path = await do_export(adapters, CommentFilter(deleted=True), ExportFormat.CSV)
    header, *rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))
    (deleted,) = [dict(zip(header, r, strict=True)) for r in rows]
    assert deleted["deleted"] == "true" and deleted["editedAt"] == "" and deleted["text"] == TEXTS[2]
    assert deleted["deletedAt"].endswith("+03:00") and before <= datetime.fromisoformat(deleted["deletedAt"]) <= after

    _, path = await do_export(adapters, CommentFilter(deleted=True), ExportFormat.XLSX)
    sheet = openpyxl.load_workbook(path)["comments"]
    assert sheet.cell(1, _column("deletedAt")).value == "Deleted at (Europe/Moscow)"
    cell = sheet.cell(2, _column("deletedAt"))
    assert cell.is_date and cell.number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet.cell(2, _column("editedAt")).value is None
    # The flags travel with the task: an export filters as the comments query does.
    assert filter_from_params(filter_to_params(CommentFilter(deleted=True, edited=False))) == CommentFilter(
        deleted=True, edited=False
    )


async def test_the_review_workflow_is_exported_and_filtered(world, adapters, uow_factory) -> None:
    """Status, assignee, tags and note are columns of every format, and the workflow filters
    select an export's rows as they select the comments query's."""
    first, second = sorted(world["ids"].values())[:2]
    async with uow_factory() as uow:
        await uow.comments.set_workflow([
            WorkflowState(id=first, viewed=False, archived=False, status=CommentStatus.IN_PROGRESS, assignee="Анна",
                          tags=("доставка", "срочно"), note="=перезвонить"),
            WorkflowState(id=second, viewed=False, archived=False, status=CommentStatus.DONE, assignee=None,
                          tags=("срочно",), note=None),
        ])
        await uow.commit()

    _, path = await do_export(adapters, CommentFilter(tags=("срочно",)), ExportFormat.JSONL)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(r["commentId"], r["status"], r["assignee"], r["tags"], r["note"]) for r in rows] == [
        (first, "IN_PROGRESS", "Анна", ["доставка", "срочно"], "=перезвонить"),
        (second, "DONE", None, ["срочно"], None),
    ]
    _, path = await do_export(
        adapters, CommentFilter(statuses=(CommentStatus.IN_PROGRESS,), assignees=("Анна",)), ExportFormat.CSV
    )
    header, *lines = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))
    (row,) = [dict(zip(header, r, strict=True)) for r in lines]
    # A note that would be a spreadsheet formula is written as text.
    assert (row["status"], row["assignee"], row["tags"], row["note"]) == (
        "IN_PROGRESS", "Анна", "доставка, срочно", "'=перезвонить"
    )
    _, path = await do_export(adapters, CommentFilter(statuses=(CommentStatus.NEW,)), ExportFormat.XLSX)
    sheet = openpyxl.load_workbook(path)["comments"]
    assert sheet.cell(1, _column("status")).value == "Status"
    assert sheet.max_row - 1 == COMMENTS - 2
    assert {sheet.cell(r, _column("status")).value for r in range(2, sheet.max_row + 1)} == {"NEW"}
