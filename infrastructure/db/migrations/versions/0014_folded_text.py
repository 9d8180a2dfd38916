"""The comment filter's folded text, stored: ``comments.text_folded``.

The ``text`` filter compares folded words with the folded comment text
(``domain.queries.fold_text``: Unicode's full lowercase, "ё" as "е"). PostgreSQL computed that
fold in SQL (``lower(text COLLATE "und-x-icu")``) for the trigram index and again for every
candidate row the index returned, to confirm it: a text page and its count spent their time
lowercasing comments under ICU, more of them as the store grew. SQLite called the domain's
function on every row it scanned.

Now the writer stores the fold beside the text (``SqlCommentRepository.upsert_many``, with the
domain's own function, so both databases compare the same strings), the trigram index is on that
column, and a candidate is confirmed by a plain LIKE on it. The backfill folds existing comments
with the same Python function (on PostgreSQL: folded in SQL as the old index was, in one rewrite
of the table, then checked against Python's fold).

NOT NULL with the default '' (the fold of an empty text); every writer sets it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

from domain.queries import fold_text

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

OLD_FOLDED = """replace(lower(text COLLATE "und-x-icu"), 'ё', 'е')"""
BATCH = 10_000


def _backfill(*, only_changed: bool) -> None:
    """Set ``text_folded`` to ``fold_text(text)`` where it is not that already (``only_changed``:
    compare first; else every comment whose fold is not '')."""
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        update = sa.text(
            "UPDATE comments SET text_folded = v.folded FROM unnest(:ids, :folded) AS v(id, folded)"
            " WHERE comments.id = v.id"
        ).bindparams(sa.bindparam("ids", type_=ARRAY(sa.BigInteger)), sa.bindparam("folded", type_=ARRAY(sa.Text)))
    else:
        update = sa.text("UPDATE comments SET text_folded = :folded WHERE id = :id")
    after = 0
    while True:
        rows = bind.execute(
            sa.text("SELECT id, text, text_folded FROM comments WHERE id > :after ORDER BY id LIMIT :n"),
            {"after": after, "n": BATCH},
        ).all()
        if not rows:
            return
        changed = [
            (row_id, folded) for row_id, text, stored in rows
            if (folded := fold_text(text)) != (stored if only_changed else "")
        ]
        if changed:
            if postgres:
                bind.execute(update, {"ids": [i for i, _ in changed], "folded": [f for _, f in changed]})
            else:
                bind.execute(update, [{"id": i, "folded": f} for i, f in changed])
        after = rows[-1][0]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.add_column("comments", sa.Column("text_folded", sa.Text(), nullable=False, server_default=sa.text("''")))
        _backfill(only_changed=False)
        return
    # PostgreSQL: the column is added as one computed from the old index's expression (a single
    # rewrite of the table that builds every index anew; an UPDATE of every row would leave each
    # index and the table twice their size), then made a plain column. Where Python's fold
    # differs from ICU's (characters the two Unicode versions disagree on), the Python one is
    # written: what the writers store from now on.
    op.execute("DROP INDEX IF EXISTS ix_comments_text_search")
    op.execute(f"ALTER TABLE comments ADD COLUMN text_folded text GENERATED ALWAYS AS ({OLD_FOLDED}) STORED")
    op.execute("ALTER TABLE comments ALTER COLUMN text_folded DROP EXPRESSION")
    op.execute("ALTER TABLE comments ALTER COLUMN text_folded SET DEFAULT '', ALTER COLUMN text_folded SET NOT NULL")
    _backfill(only_changed=True)
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
                CREATE INDEX IF NOT EXISTS ix_comments_text_search ON comments
                    USING gin (text_folded gin_trgm_ops);
            END IF;
        END $$
        """
    )
    op.execute("ANALYZE comments")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_comments_text_search")
        op.execute(
            f"""
            DO $$
            BEGIN
                IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
                    CREATE INDEX IF NOT EXISTS ix_comments_text_search ON comments
                        USING gin (({OLD_FOLDED}) gin_trgm_ops);
                END IF;
            END $$
            """
        )
    # Not a batch (see 0009): SQLite's rebuild would cascade-delete every match.
    op.execute("ALTER TABLE comments DROP COLUMN text_folded")
