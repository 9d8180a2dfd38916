"""A ``domain.queries.CommentFilter`` as SQL conditions: the one translation the ``comments``
query, its counts and the exports share, so an export holds exactly the rows the query shows.

What each condition means is the domain's (``CommentFilter.admits``, which the live feed
uses); this is how each database says it. Text is literal on both: every folded word a
substring of the folded text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from domain.queries import CommentFilter
from domain.rules import AnyOf, Contains, Narrowing, QueryMatcher
from infrastructure.db.bulk import one_of
from infrastructure.db.tables import comments, matches

LIKE_ESCAPE = "\\"


def like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def folded_text(dialect: str) -> ColumnElement[str]:
    """``domain.queries.fold_text`` of a comment's text, in SQL: the stored
    ``comments.text_folded`` on both databases (the comment upsert writes it with the domain's
    own function, so both compare the same strings). PostgreSQL's trigram index
    (``TEXT_SEARCH_INDEX``) is on that column, after ``group_id`` (migration 0016: a community's
    text search is one scan of it; ``one_of`` binds one community as ``group_id = $1::BIGINT``,
    int8 = int8, which btree_gin serves); a candidate it returns is confirmed by comparing the
    stored fold, not by lowercasing the text again.
    """
    return comments.c.text_folded


# pg_trgm takes trigrams of a LIKE pattern from its runs of letters and digits, unpadded where a
# wildcard is: a substring with no such run of 3 gives none, and the index would answer it by
# reading every trigram entry it holds.
_TRIGRAM = re.compile(r"[^\W_]{3}")


def contains(dialect: str, word: str) -> ColumnElement[bool]:
    """The folded text has ``word`` (folded) as a substring.

    On PostgreSQL a word the trigram index cannot narrow ("ст", "5%") is compared under the
    "C" collation: the same result (LIKE compares characters under any deterministic
    collation), but no index matches it, so the planner cannot pick the trigram index for it.
    Given a community too, it did: the combined index's scan for ``group_id = 8 AND
    text_folded LIKE '%ст%'`` read the whole trigram part of the index (6,700 buffers, 780 ms at
    1,000,000 comments) where the community's btree index and a filter took 30 ms."""
    folded = folded_text(dialect)
    if dialect == "postgresql" and not _TRIGRAM.search(word):
        folded = folded.collate("C")
    return folded.like(like_pattern(word), escape=LIKE_ESCAPE)


def text_condition(flt: CommentFilter, dialect: str) -> ColumnElement[bool] | None:
    """``CommentFilter.text``: every folded word a substring of the folded text."""
    words = flt.text_words
    if not words:
        return None
    return and_(*(contains(dialect, word) for word in words))


def _text_array(values: Sequence[str]) -> ColumnElement:
    # One array parameter: one prepared statement however many values (see ``bulk``).
    return bindparam(None, list(values), type_=ARRAY(Text))


def in_texts(dialect: str, column, values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN values`` for text columns, as ``bulk.in_values`` for integers."""
    if dialect == "postgresql":
        return column == any_(_text_array(values))
    return column.in_(values)


def tags_condition(tags: tuple[str, ...], dialect: str) -> ColumnElement[bool]:
    """A comment with at least one of ``tags`` (a JSON array of strings on both databases).

    PostgreSQL: JSONB's ``?|`` (any of these strings is an element), which the GIN index
    (``tables.TAGS_INDEX``) serves. SQLite: an element of ``json_each`` among them."""
    if not tags:
        return false()
    if dialect == "postgresql":
        return type_coerce(comments.c.tags, JSONB).has_any(_text_array(tags))
    element = func.json_each(comments.c.tags).table_valued("value")
    return select(literal(1)).select_from(element).where(element.c.value.in_(tags)).exists()


def narrowing_condition(narrowing: Narrowing, dialect: str) -> ColumnElement[bool] | None:
    """``QueryMatcher.narrowing`` in SQL: substrings of the folded text, served by the trigram
    index on PostgreSQL. Implied by a match, not the match: the domain decides on each row."""
    if narrowing is None:
        return None
    if isinstance(narrowing, Contains):
        return contains(dialect, narrowing.text)
    parts = [narrowing_condition(item, dialect) for item in narrowing.items]
    if isinstance(narrowing, AnyOf):
        alternatives = [p for p in parts if p is not None]
        return or_(*alternatives) if len(alternatives) == len(parts) else None
    kept = [p for p in parts if p is not None]
    return and_(*kept) if kept else None


def comment_conditions(
    flt: CommentFilter, dialect: str, query: QueryMatcher | None = None
) -> list[ColumnElement[bool]]:
    """The filter's conditions; with ``flt.query``, ``query`` is it compiled, and the conditions
    only narrow: each row they give must still pass ``query.matches`` (``QueryMatcher``)."""
    c = comments.c
    conditions: list[ColumnElement[bool]] = []
    if flt.query is not None:
        if query is None:
            raise ValueError("a filter with a query needs it compiled")
        if (narrowed := narrowing_condition(query.narrowing, dialect)) is not None:
            conditions.append(narrowed)
    if flt.group_ids is not None:
        conditions.append(one_of(dialect, c.group_id, flt.group_ids) if flt.group_ids else false())
    if flt.post_ids is not None:
        conditions.append(one_of(dialect, c.post_id, flt.post_ids) if flt.post_ids else false())
    if flt.keyword_ids is not None:
        has_keyword = exists().where(
            matches.c.comment_id == c.id, one_of(dialect, matches.c.keyword_id, flt.keyword_ids)
        )
        conditions.append(has_keyword if flt.keyword_ids else false())
    if flt.matched is not None:
        conditions.append(c.matches_count > 0 if flt.matched else c.matches_count == 0)
    if (text := text_condition(flt, dialect)) is not None:
        conditions.append(text)
    if flt.author_ids is not None:
        conditions.append(one_of(dialect, c.from_id, flt.author_ids) if flt.author_ids else false())
    if flt.since is not None:
        conditions.append(c.published_at >= flt.since)
    if flt.until is not None:
        conditions.append(c.published_at <= flt.until)
    if flt.viewed is not None:
        conditions.append(c.viewed == flt.viewed)
    if flt.archived is not None:
        conditions.append(c.archived == flt.archived)
    if flt.deleted is not None:
        # Spelled as the partial index's predicate (``tables.DELETED``), so the index serves it.
        conditions.append(c.deleted if flt.deleted else ~c.deleted)
    if flt.edited is not None:
        conditions.append(c.edited_at.is_not(None) if flt.edited else c.edited_at.is_(None))
    if flt.statuses is not None:
        statuses = [s.value for s in flt.statuses]
        conditions.append(in_texts(dialect, c.status, statuses) if statuses else false())
    if flt.assignees is not None:
        conditions.append(in_texts(dialect, c.assignee, flt.assignees) if flt.assignees else false())
    if flt.tags is not None:
        conditions.append(tags_condition(flt.tags, dialect))
    return conditions
