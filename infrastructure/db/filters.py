"""A ``domain.queries.CommentFilter`` as SQL conditions: the one translation the ``comments``
query, its counts and the exports share, so an export holds exactly the rows the query shows.

Text search differs by database: PostgreSQL uses its full-text index (Russian stemming),
SQLite matches every word as a case-insensitive substring.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, func, literal_column

from domain.queries import CommentFilter
from infrastructure.db.tables import comments, matches

LIKE_ESCAPE = "\\"


def like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def text_condition(text: str, dialect: str) -> ColumnElement[bool] | None:
    text = text.strip()
    if not text:
        return None
    if dialect == "postgresql":
        # Same expression as the GIN index ix_comments_text_fts, so the index is used;
        # 'russian' stemming makes "кошка" find "кошками".
        config = literal_column("'russian'::regconfig")
        return func.to_tsvector(config, comments.c.text).op("@@")(func.plainto_tsquery(config, text))
    # SQLite: every word as a case-insensitive substring. fold_text() is registered by
    # infrastructure.db.engine (SQLite's own lower() folds ASCII only, not Cyrillic).
    folded = text.casefold().replace("ё", "е")
    return and_(
        *(func.fold_text(comments.c.text).like(like_pattern(word), escape=LIKE_ESCAPE) for word in folded.split())
    )


def comment_conditions(flt: CommentFilter, dialect: str) -> list[ColumnElement[bool]]:
    c = comments.c
    conditions: list[ColumnElement[bool]] = []
    if flt.group_ids is not None:
        conditions.append(c.group_id.in_(flt.group_ids) if flt.group_ids else false())
    if flt.post_ids is not None:
        conditions.append(c.post_id.in_(flt.post_ids) if flt.post_ids else false())
    if flt.keyword_ids is not None:
        has_keyword = exists().where(matches.c.comment_id == c.id, matches.c.keyword_id.in_(flt.keyword_ids))
        conditions.append(has_keyword if flt.keyword_ids else false())
    if flt.matched is not None:
        conditions.append(c.matches_count > 0 if flt.matched else c.matches_count == 0)
    if flt.text is not None and (text := text_condition(flt.text, dialect)) is not None:
        conditions.append(text)
    if flt.author_ids is not None:
        conditions.append(c.from_id.in_(flt.author_ids) if flt.author_ids else false())
    if flt.since is not None:
        conditions.append(c.published_at >= flt.since)
    if flt.until is not None:
        conditions.append(c.published_at <= flt.until)
    if flt.viewed is not None:
        conditions.append(c.viewed == flt.viewed)
    if flt.archived is not None:
        conditions.append(c.archived == flt.archived)
    return conditions
