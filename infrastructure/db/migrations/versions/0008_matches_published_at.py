"""Matches carry their comment's ``published_at``: a keyword's comments newest first, from an index.

The ``keywordIds`` filter's page walked every comment newest first and probed ``matches`` for
each until a page was found: work in inverse proportion to the keyword's share of comments
(23,000 probes for a keyword in 0.8% of 10,000,000 comments; a rare keyword walks them all).
With the comment's time on each match, ``matches (keyword_id, published_at, comment_id)`` holds
a keyword's comments in the page's order; the repositories keep the copy equal to the comment's.
The index also counts a keyword's comments, so it replaces ``(keyword_id, comment_id)`` (0007).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("matches", sa.Column("published_at", TIMESTAMP, nullable=True))
    op.execute(
        "UPDATE matches SET published_at = "
        "(SELECT comments.published_at FROM comments WHERE comments.id = matches.comment_id)"
    )
    with op.batch_alter_table("matches") as batch:  # SQLite rebuilds the table
        batch.alter_column("published_at", existing_type=TIMESTAMP, nullable=False)
    if op.get_context().dialect.name == "postgresql":
        op.execute("SET LOCAL maintenance_work_mem = '512MB'")
    op.create_index(
        "ix_matches_keyword_id_published_at_comment_id", "matches", ["keyword_id", "published_at", "comment_id"]
    )
    op.drop_index("ix_matches_keyword_id_comment_id", table_name="matches")


def downgrade() -> None:
    op.create_index("ix_matches_keyword_id_comment_id", "matches", ["keyword_id", "comment_id"])
    op.drop_index("ix_matches_keyword_id_published_at_comment_id", table_name="matches")
    with op.batch_alter_table("matches") as batch:
        batch.drop_column("published_at")
