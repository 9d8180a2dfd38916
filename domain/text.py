"""Text a user gives us, as both databases can store and search it.

PostgreSQL's text and JSONB refuse the NUL character (SQLite stores it), and no database
driver can encode a lone UTF-16 surrogate. Text from users is checked where it enters the
domain — a keyword, a category, a comment or keyword search — and refused with BAD_USER_INPUT
naming the field, so both databases give the same answer. Refused, not stripped: a search for
"a\\u0000b" is not a search for "ab", and no stored text can contain either character.
"""

from __future__ import annotations

import re

from domain.errors import InvalidInput

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def checked_text(value: str, *, field: str) -> str:
    """``value`` unchanged when a database can hold it; else InvalidInput about ``field``."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return value
    what = "the NUL character (\\u0000)" if found.group() == "\x00" else "a lone surrogate (not Unicode text)"
    raise InvalidInput(f"`{field}` contains {what}, which cannot be stored or searched", field=field)
