"""Cursors: the spelled-out fast path writes exactly what the JSON encoder writes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from infrastructure.db.queries import decode_cursor, encode_cursor


def _by_json(key, row_id) -> str:
    if isinstance(key, datetime):
        key = key.isoformat()
    raw = json.dumps([key, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


TIMES = [
    datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 0, 1, 5, tzinfo=timezone(timedelta(hours=3, minutes=30))),
]


@pytest.mark.parametrize("key", [*TIMES, 0, 7, -3, 2**63 - 1, True, None, "text", 1.5])
@pytest.mark.parametrize("row_id", [1, 2**63 - 1, 0, True])
def test_a_cursor_is_what_the_json_encoder_writes(key, row_id) -> None:
    assert encode_cursor(key, row_id) == _by_json(key, row_id)


@pytest.mark.parametrize("key", TIMES[:2])
def test_a_time_cursor_reads_back(key) -> None:
    assert decode_cursor(encode_cursor(key, 42), datetime) == (key, 42)
