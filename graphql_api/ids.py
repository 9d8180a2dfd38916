"""Object ids as clients see them: the one place they are made and read.

An object's ``id`` is a global id, Relay's convention: base64 of ``"<Type>:<row id>"``
(``"R3JvdXA6MQ=="`` is ``Group:1``), unique across types, so ``node(id:)`` can refetch anything
and a client's cache can key on it. Clients treat it as opaque.

Every argument that names an object of one type also takes its plain row id (``"1"``), the form
ids had before and the one the CLI, logs and scripts use. A global id of another type is the
caller's mistake and is said so (BAD_USER_INPUT), never read as a row id of the wanted type; an
id that names nothing we could have handed out is simply not found.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Sequence

import strawberry

from domain.errors import InvalidInput, NotFound


class NodeType(enum.StrEnum):
    """The types with global ids; the value is the GraphQL type's name, written into ids."""

    GROUP = "Group"
    POST = "Post"
    COMMENT = "Comment"
    KEYWORD = "Keyword"
    TASK = "Task"
    API_TOKEN = "ApiToken"
    RULE = "Rule"


# Row ids are ASCII digits only. ('²', '③' and '١' pass str.isdigit(), and int() refuses the
# first two and reads the third as 1: neither is an id we gave.)
_ROW_ID = re.compile(r"[0-9]{1,18}")  # 18 digits: every value fits a 64-bit column
_MAX_GLOBAL_ID = 64  # ours stay under 40 characters


def global_id(kind: NodeType, pk: int) -> strawberry.ID:
    return strawberry.ID(base64.b64encode(f"{kind.value}:{pk}".encode()).decode())


def _row_id(text: str) -> int | None:
    if _ROW_ID.fullmatch(text) is None:
        return None
    return int(text) or None


def decode_id(value: strawberry.ID | str) -> tuple[NodeType | None, int] | None:
    """(type, row id) of an id: type None for a plain row id; None when it names nothing we made.

    Only the exact spelling ``global_id`` produces is read, so one object has one id."""
    text = str(value).strip()
    pk = _row_id(text)
    if pk is not None:
        return None, pk
    if len(text) > _MAX_GLOBAL_ID:
        return None
    try:
        kind_name, _, pk_text = base64.b64decode(text, validate=True).decode("ascii").partition(":")
        kind = NodeType(kind_name)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    pk = _row_id(pk_text)
    if pk is None or global_id(kind, pk) != text:
        return None
    return kind, pk


def find_id(value: strawberry.ID | str, kind: NodeType, *, field: str = "id") -> int | None:
    """The row id of a ``kind`` an id names (global or plain); None when it can name none.

    Raises InvalidInput for the global id of another type."""
    decoded = decode_id(value)
    if decoded is None:
        return None
    found_kind, pk = decoded
    if found_kind is not None and found_kind is not kind:
        raise InvalidInput(f"'{value}' is the id of a {found_kind.value}, not of a {kind.value}", field=field)
    return pk


def parse_id(value: strawberry.ID | str, kind: NodeType, *, field: str = "id") -> int:
    """As ``find_id``, for an id that must exist: one that cannot is NotFound."""
    found = find_id(value, kind, field=field)
    if found is None:
        raise NotFound(f"{kind.value} '{value}' not found", field=field)
    return found


def filter_ids(values: Sequence[strawberry.ID] | None, kind: NodeType, *, field: str) -> tuple[int, ...] | None:
    """Row ids of a list filter, each once. One that cannot exist matches nothing; an empty list
    matches nothing; the global id of another type is InvalidInput."""
    if values is None:
        return None
    found = (find_id(v, kind, field=field) for v in values)
    return tuple(dict.fromkeys(i for i in found if i is not None))
