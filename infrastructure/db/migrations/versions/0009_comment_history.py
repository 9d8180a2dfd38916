"""Comment history: edits and deletions seen after a comment was collected.

VK lets people edit a comment (same id, same ``count``, new text) and delete one (it comes back
as ``deleted: true`` with empty text while it has replies, and vanishes otherwise). A re-read
used to overwrite the stored text with the new one, or with VK's empty placeholder. Now:

- ``comments.edited_at``: when the collector last saw the text change; NULL: never seen edited;
- ``comments.deleted_at``: when it noticed the deletion (set exactly when ``deleted`` is);
  comments already stored as deleted get their first collection time;
- ``comment_versions``: the texts a comment had before, each with when it was first seen.

Both filters (``edited``, ``deleted``) select few comments of many: a partial index each, in the
comments' default order, keeps their pages from walking every comment.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
EDITED = "edited_at IS NOT NULL"
DELETED = "deleted"


def upgrade() -> None:
    # Nullable, no default: instant on PostgreSQL however many comments there are.
    op.add_column("comments", sa.Column("edited_at", TIMESTAMP, nullable=True))
    op.add_column("comments", sa.Column("deleted_at", TIMESTAMP, nullable=True))
    op.execute("UPDATE comments SET deleted_at = created_at WHERE deleted")
    op.create_index(
        "ix_comments_edited_published_at_id", "comments", ["published_at", "id"],
        postgresql_where=sa.text(EDITED), sqlite_where=sa.text(EDITED),
    )
    op.create_index(
        "ix_comments_deleted_published_at_id", "comments", ["published_at", "id"],
        postgresql_where=sa.text(DELETED), sqlite_where=sa.text(DELETED),
    )
    op.create_table(
        "comment_versions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("comment_id", Id, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("seen_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_comment_versions"),
        sa.ForeignKeyConstraint(
            ["comment_id"], ["comments.id"], name="fk_comment_versions_comment_id_comments", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_comment_versions_comment_id_seen_at", "comment_versions", ["comment_id", "seen_at"])


def downgrade() -> None:
    op.drop_index("ix_comment_versions_comment_id_seen_at", table_name="comment_versions")
    op.drop_table("comment_versions")
    op.drop_index("ix_comments_deleted_published_at_id", table_name="comments")
    op.drop_index("ix_comments_edited_published_at_id", table_name="comments")
    # Not a batch: SQLite's rebuild drops the old table, and with it (ON DELETE CASCADE) every
    # match. ALTER TABLE ... DROP COLUMN is SQLite's own since 3.35.
    op.execute("ALTER TABLE comments DROP COLUMN deleted_at")
    op.execute("ALTER TABLE comments DROP COLUMN edited_at")
