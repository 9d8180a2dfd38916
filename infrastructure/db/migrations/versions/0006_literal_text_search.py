"""The comment filter's `text` is literal (folded substrings) on PostgreSQL too.

PostgreSQL searched with 'russian' full-text stemming while SQLite and the live feed matched
folded substrings, so one filter selected different comments. The meaning is now the domain's
(``domain.queries``), and PostgreSQL's index follows it: the stemming index goes, a trigram
index on the folded text (the expression ``infrastructure.db.filters.folded_text`` builds)
serves LIKE '%word%'.

pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may create it. Where even
that is refused, the migration goes on without the index and searches scan.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FOLDED = """replace(lower(text COLLATE "und-x-icu"), 'ё', 'е')"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_comments_text_fts")
    op.execute(
        """
        DO $$
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege OR undefined_file THEN
            RAISE WARNING 'pg_trgm is not available: comment text search runs without an index';
        END $$
        """
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
                CREATE INDEX IF NOT EXISTS ix_comments_text_search ON comments USING gin (({FOLDED}) gin_trgm_ops);
            END IF;
        END $$
        """
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_comments_text_search")
    op.execute("CREATE INDEX IF NOT EXISTS ix_comments_text_fts ON comments USING gin (to_tsvector('russian', text))")
