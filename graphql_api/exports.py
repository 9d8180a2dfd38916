"""Exports: the file formats, what to export (``StartExportInput``) and what a finished export
wrote (``ExportResult``, with its signed download link, ``exports_route.py``). The
``startExport`` mutation starts an EXPORT task, so it is mounted with the tasks (``tasks.py``);
the writing lives in ``domain.export``."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from graphql_api.comments import CommentFilterInput
from graphql_api.context import Info
from graphql_api.exports_route import export_link


@strawberry.enum(description="File format of an export.")
class ExportFormat(enum.Enum):
    CSV = strawberry.enum_value("CSV", description="Comma-separated values, UTF-8 with BOM (opens in Excel).")
    XLSX = strawberry.enum_value("XLSX", description="An Excel workbook.")
    JSONL = strawberry.enum_value("JSONL", description="JSON Lines: one JSON object per comment.")


@strawberry.enum(description="What separates the values of a CSV export's rows.")
class CsvDelimiter(enum.Enum):
    COMMA = strawberry.enum_value("COMMA", description="`,` — most tools, and Excel in English locales.")
    SEMICOLON = strawberry.enum_value(
        "SEMICOLON", description="`;` — Excel in Russian and most European locales, which use a decimal comma."
    )
    TAB = strawberry.enum_value("TAB", description="A tab: a tab-separated `.tsv` file.")


@strawberry.type(description="The file a successful export wrote, and a link that downloads it.")
class ExportResult:
    file_name: str = strawberry.field(description="The name a browser saves the file as.")
    format: ExportFormat = strawberry.field(description="The file format.")
    rows: int = strawberry.field(description="Comments written to the file.")
    bytes: float = strawberry.field(
        description="Size of the file in bytes (a Float because GraphQL's Int ends at 2 GiB)."
    )
    url: str | None = strawberry.field(
        description="Absolute download link that needs no Authorization header (an `<a href>` works): it "
        "carries its own signature, valid until `expiresAt`. Null once the file has expired."
    )
    expires_at: datetime | None = strawberry.field(
        description="When `url` stops working (a download then answers 403 LINK_EXPIRED); read the task "
        "again for a fresh link, until `fileExpiresAt`."
    )
    file_expires_at: datetime | None = strawberry.field(
        description="When the file is deleted; null once it has been (start a new export)."
    )

    @classmethod
    def of(cls, result: object, info: Info) -> ExportResult | None:
        """The typed view of an EXPORT task's ``result``; None for a result that lacks the fields
        (written by an older version)."""
        if not isinstance(result, dict) or not {"file", "fileName", "rows", "format", "bytes"} <= result.keys():
            return None
        link = export_link(info.context.container, info.context.base_url, result["file"])
        url, expires_at, file_expires_at = link if link is not None else (None, None, None)
        return cls(
            file_name=result["fileName"], format=ExportFormat(result["format"]), rows=result["rows"],
            bytes=result["bytes"], url=url, expires_at=expires_at, file_expires_at=file_expires_at,
        )  # fmt: skip


@strawberry.input(description="What to export, and how.")
class StartExportInput:
    filter: CommentFilterInput | None = strawberry.field(
        default=None, description="Which comments (as in the `comments` query); default: all."
    )
    format: ExportFormat = strawberry.field(default=ExportFormat.CSV, description="The file format.")
    time_zone: str | None = strawberry.field(
        default=None,
        description="The IANA time zone the file's times are written in, e.g. `Europe/Moscow`, `Asia/Yekaterinburg`, "
        "`UTC`; default: the server's setting (VKCP_EXPORT_TIME_ZONE, Europe/Moscow unless set). XLSX names it in "
        "the time's column header; CSV and JSONL write ISO 8601 times with its offset.",
    )
    delimiter: CsvDelimiter | None = strawberry.field(
        default=None, description="CSV only: what separates the values; default: COMMA."
    )
    priority: int = strawberry.field(default=5, description="Queue priority (1–10, higher runs first).")
