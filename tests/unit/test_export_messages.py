"""What a finished export tells people about its file."""

from __future__ import annotations

from domain.export import human_size, written_message


def test_sizes_read_like_a_file_manager_shows_them() -> None:
    assert [human_size(n) for n in (0, 1, 999, 1000, 1_234_567, 999_960, 5 * 10**9, 3 * 10**12)] == [
        "0 bytes", "1 byte", "999 bytes", "1.0 KB", "1.2 MB", "1.0 MB", "5.0 GB", "3.0 TB",
    ]


def test_the_written_message_names_rows_file_and_size() -> None:
    assert written_message(12_345, "comments-2026-11-30-1534.xlsx", 1_234_567) == (
        "12,345 comments written to comments-2026-11-30-1534.xlsx (1.2 MB)"
    )
    assert written_message(1, "c.csv", 90) == "1 comment written to c.csv (90 bytes)"
    assert written_message(0, "c.csv", 3) == "0 comments written to c.csv (3 bytes)"
