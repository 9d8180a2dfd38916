"""A team's review workflow: status, assignee, tags and a note per comment, and its audit trail.

- ``comments.status`` (``NEW`` ``IN_PROGRESS`` ``DONE`` ``IGNORED``; every stored comment starts
  ``NEW``), ``comments.assignee`` (an API token's name), ``comments.tags`` (a JSON array of
  labels: JSONB on PostgreSQL, JSON text on SQLite) and ``comments.note``;
- an index per queue filter (status, assignee) in the comments' default order, and on PostgreSQL
  a GIN index on the tags (``tags ?| array[...]``);
- ``comment_events``: one row per changed field per comment (who, what old -> new, when),
  append-only (a trigger refuses an UPDATE on both databases).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonValue = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # A constant default and NOT NULL: PostgreSQL (11+) stores the default once, instantly,
    # however many comments there are; SQLite's ADD COLUMN is instant too.
    op.add_column("comments", sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'NEW'")))
    op.add_column("comments", sa.Column("assignee", sa.String(200), nullable=True))
    op.add_column("comments", sa.Column("tags", JsonValue, nullable=False, server_default=sa.text("'[]'")))
    op.add_column("comments", sa.Column("note", sa.Text(), nullable=True))
    op.create_index("ix_comments_status_published_at_id", "comments", ["status", "published_at", "id"])
    op.create_index("ix_comments_assignee_published_at_id", "comments", ["assignee", "published_at", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_comments_tags", "comments", ["tags"], postgresql_using="gin")
    op.create_table(
        "comment_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("comment_id", Id, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_comment_events"),
        sa.ForeignKeyConstraint(
            ["comment_id"], ["comments.id"], name="fk_comment_events_comment_id_comments", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_comment_events_comment_id_id", "comment_events", ["comment_id", "id"])
    # Append-only in the database too: an UPDATE of an event fails, whoever sends it. (A DELETE
    # stays possible: a removed community's comments take their events with them.)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION comment_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'comment_events is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER comment_events_append_only BEFORE UPDATE ON comment_events "
            "FOR EACH ROW EXECUTE FUNCTION comment_events_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER comment_events_append_only BEFORE UPDATE ON comment_events "
            "BEGIN SELECT RAISE(ABORT, 'comment_events is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER comment_events_append_only ON comment_events")
        op.execute("DROP FUNCTION comment_events_append_only()")
    else:
        op.execute("DROP TRIGGER comment_events_append_only")
    op.drop_index("ix_comment_events_comment_id_id", table_name="comment_events")
    op.drop_table("comment_events")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_comments_tags", table_name="comments")
    op.drop_index("ix_comments_assignee_published_at_id", table_name="comments")
    op.drop_index("ix_comments_status_published_at_id", table_name="comments")
    # Not a batch (see 0009): SQLite's rebuild would cascade-delete every match.
    for column in ("note", "tags", "assignee", "status"):
        op.execute(f"ALTER TABLE comments DROP COLUMN {column}")
