"""One GIN index for a community's text search: ``(group_id, text_folded gin_trgm_ops)``.

The console's usual text search is inside one community (``groupIds: [id]`` and ``text``).
The trigram index on ``text_folded`` alone (0014) gave the planner every comment of the store
holding the words, then either filtered them by community on the heap or ANDed the bitmap with
the community's btree index. With ``btree_gin`` the same GIN index also keys ``group_id``, so
one index scan returns only the community's comments that hold the words (the condition
``group_id = $1::BIGINT`` is int8 = int8, which btree_gin's operator class serves).

It replaces the text-only index under the same name (``tables.TEXT_SEARCH_INDEX``): a GIN
index on several columns serves a condition on any of them alone as well, so a text search
without a community reads it as before (the same plans and buffers), and the writers keep one
trigram index, not two.

Measured with ``bench/group_text.py`` at 1,000,000 comments in 20 communities of 25,000 to
224,000 (EXPLAIN ANALYZE, the two indexes alternating): where a community's text page or count
is a bitmap scan it reads 15 to 77% fewer buffers, 1.2 to 9 times faster (the count of "кошка"
in the largest community: 26,911 buffers and 175 ms before, 6,249 and 24 ms after; a page of
"пожар" in one of 40,500 comments: 1,145 buffers and 15 ms, 816 and 2.5 ms). Text-only pages
and counts, community pages without text: the same plans and buffers. Inserting 20,000
comments: 880 ms of the server's CPU against 850 ms with the text-only index (+3.5%; both
indexes: 1,175 ms). Not changed: a page ordered by likes or match count that the planner
answers by walking the whole store's likes (or matches_count) index and filtering, which it
still prefers for common words (41,000 to 72,000 buffers for "кошка" in a small community).

The index is built anew: 15 s at 1,000,000 comments on this machine, writes to comments
waiting meanwhile.

btree_gin is a trusted extension (PostgreSQL 13+), as pg_trgm (0006): a database owner may
create it. Where it is refused or missing, the text-only index stays. SQLite: nothing (it has
no such index; it scans).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        """
        DO $$
        BEGIN
            CREATE EXTENSION IF NOT EXISTS btree_gin;
        EXCEPTION WHEN insufficient_privilege OR undefined_file THEN
            RAISE WARNING 'btree_gin is not available: a community''s text search keeps the text-only index';
        END $$
        """
    )
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')
               AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gin') THEN
                DROP INDEX IF EXISTS ix_comments_text_search;
                CREATE INDEX ix_comments_text_search ON comments
                    USING gin (group_id, text_folded gin_trgm_ops);
            END IF;
        END $$
        """
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
                DROP INDEX IF EXISTS ix_comments_text_search;
                CREATE INDEX ix_comments_text_search ON comments USING gin (text_folded gin_trgm_ops);
            END IF;
        END $$
        """
    )
