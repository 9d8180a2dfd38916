"""Counters for what ``stats`` and filtered counts still counted row by row; indexes for the rest.

At 10,000,000 comments ``stats`` counted ``posts`` and ``stats_authors`` on every request:
both grow with the data (about one author per twenty comments). Posts per group now live in
``stats_groups.posts`` and the number of authors in the one row of ``stats_totals``, kept by
the repositories like the other aggregates (infrastructure/db/aggregates.py) and filled here
once from the data.

``stats_days`` counts the review states too (viewed, archived, both), so a count of comments
by communities, time and review state sums whole days from it and counts only the two days the
range cuts (infrastructure/db/counts.py); it counted every comment in the range before.

Two indexes serve the comment filter's counts without visiting comments:

- the communities' keyset index carries ``viewed`` and ``archived`` on PostgreSQL (INCLUDE),
  so the cut days of such a count read the index only;
- ``matches (keyword_id, comment_id)`` replaces ``(keyword_id)``: a keyword's comments are
  counted from it alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ZERO = sa.text("0")


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    op.add_column("stats_groups", sa.Column("posts", sa.BigInteger(), nullable=False, server_default=ZERO))
    op.execute(
        "INSERT INTO stats_groups (group_id) SELECT id FROM groups WHERE id NOT IN (SELECT group_id FROM stats_groups)"
    )
    op.execute(
        "UPDATE stats_groups SET posts = (SELECT count(*) FROM posts WHERE posts.group_id = stats_groups.group_id)"
    )
    op.create_table(
        "stats_totals",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("authors", sa.BigInteger(), nullable=False, server_default=ZERO),
        sa.PrimaryKeyConstraint("id", name="pk_stats_totals"),
    )
    op.execute("INSERT INTO stats_totals (id, authors) SELECT 1, count(*) FROM stats_authors")

    for name in ("viewed", "archived", "viewed_archived"):
        op.add_column("stats_days", sa.Column(name, sa.BigInteger(), nullable=False, server_default=ZERO))
    day = "CAST(timezone('UTC', published_at) AS DATE)" if postgres else "date(published_at)"
    op.execute(
        f"""UPDATE stats_days SET viewed = c.viewed, archived = c.archived, viewed_archived = c.viewed_archived
            FROM (SELECT {day} AS day, group_id, sum(CASE WHEN viewed THEN 1 ELSE 0 END) AS viewed,
                         sum(CASE WHEN archived THEN 1 ELSE 0 END) AS archived,
                         sum(CASE WHEN viewed AND archived THEN 1 ELSE 0 END) AS viewed_archived
                  FROM comments GROUP BY {day}, group_id) AS c
            WHERE stats_days.day = c.day AND stats_days.group_id = c.group_id"""
    )

    if postgres:
        # Sorting 10,000,000 index entries: give this session's builds room and both workers.
        op.execute("SET LOCAL maintenance_work_mem = '512MB'")
    op.create_index(
        "ix_comments_group_id_published_at_id_state", "comments", ["group_id", "published_at", "id"],
        postgresql_include=["viewed", "archived"],
    )
    op.drop_index("ix_comments_group_id_published_at_id", table_name="comments")
    op.create_index("ix_matches_keyword_id_comment_id", "matches", ["keyword_id", "comment_id"])
    op.drop_index("ix_matches_keyword_id", table_name="matches")


def downgrade() -> None:
    op.create_index("ix_matches_keyword_id", "matches", ["keyword_id"])
    op.drop_index("ix_matches_keyword_id_comment_id", table_name="matches")
    op.create_index("ix_comments_group_id_published_at_id", "comments", ["group_id", "published_at", "id"])
    op.drop_index("ix_comments_group_id_published_at_id_state", table_name="comments")
    op.drop_table("stats_totals")
    with op.batch_alter_table("stats_days") as batch:  # SQLite rebuilds a table to drop a column
        for name in ("viewed", "archived", "viewed_archived"):
            batch.drop_column(name)
    with op.batch_alter_table("stats_groups") as batch:
        batch.drop_column("posts")
