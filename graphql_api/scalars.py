"""Scalars whose input needs more care than Strawberry's defaults give it.

``DateTime`` is an instant. Strawberry's parser took times without an offset, which the
database cannot place, and any time Python can hold, although year 1 at +14:00 has no UTC
equivalent: both failed only when they reached the database. Here every DateTime input —
comment filters, a community's settings, parse options — is parsed once: it needs an offset,
must lie within years 1–9999 in UTC, and arrives converted to UTC. A value outside that is the
caller's mistake, reported like any other wrong variable (code BAD_USER_INPUT).
"""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition

from graphql_api.codes import ErrorCode

EXAMPLE = "2024-05-01T12:00:00Z"
_SHOWN = 40  # characters of a bad value quoted back
_BAD_INPUT = {"code": ErrorCode.BAD_USER_INPUT.value}


def _invalid(value: str, problem: str) -> GraphQLError:
    shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "…"
    return GraphQLError(f"DateTime {shown!r} {problem}", extensions=_BAD_INPUT)


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise GraphQLError(f"A DateTime is a string, e.g. {EXAMPLE}", extensions=_BAD_INPUT)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(value, f"is not an ISO 8601 date and time, e.g. {EXAMPLE}") from None
    if parsed.tzinfo is None:
        raise _invalid(value, f"has no time zone offset: add one, e.g. {EXAMPLE}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _invalid(value, "is outside 0001-01-01T00:00:00Z … 9999-12-31T23:59:59Z") from None


DateTime = strawberry.scalar(
    name="DateTime",
    description="An instant: ISO 8601 with a time zone offset, e.g. `2024-05-01T12:00:00Z` or "
    "`2024-05-01T15:00:00+03:00`, within years 1–9999 UTC. Returned in UTC.",
    serialize=datetime.isoformat,
    parse_value=parse_datetime,
)

SCALARS: dict[object, ScalarDefinition] = {datetime: DateTime}
