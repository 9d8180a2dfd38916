"""Initial schema: groups, posts, authors, comments, keywords, matches, tasks, api_tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Types as of this revision (kept here, not imported, so the migration never changes).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Time = sa.DateTime(timezone=True)
TRUE = sa.text("true")
FALSE = sa.false()


def _id() -> sa.Column:
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "groups",
        _id(),
        sa.Column("vk_id", sa.BigInteger(), nullable=False),
        sa.Column("screen_name", sa.String(255), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("is_closed", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("members_count", sa.Integer()),
        sa.Column("photo_url", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("deactivated", sa.String(32)),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("max_posts", sa.Integer()),
        sa.Column("since", Time),
        sa.Column("monitor_enabled", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("monitor_interval_minutes", sa.Integer(), nullable=False, server_default=sa.text("60")),
        sa.Column("monitor_priority", sa.Integer(), nullable=False, server_default=sa.text("5")),
        sa.Column("next_run_at", Time),
        sa.Column("last_run_at", Time),
        sa.Column("last_success_at", Time),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        sa.UniqueConstraint("vk_id", name="uq_groups_vk_id"),
    )

    op.create_table(
        "posts",
        _id(),
        sa.Column("group_id", Id, nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("vk_id", sa.BigInteger(), nullable=False),
        sa.Column("from_id", sa.BigInteger()),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("published_at", Time, nullable=False),
        sa.Column("comments_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("comments_synced_count", sa.Integer()),
        sa.Column("likes", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("reposts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("views", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("is_pinned", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.PrimaryKeyConstraint("id", name="pk_posts"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_posts_group_id_groups", ondelete="CASCADE"),
        sa.UniqueConstraint("owner_id", "vk_id", name="uq_posts_owner_id_vk_id"),
    )
    op.create_index("ix_posts_group_id", "posts", ["group_id"])

    op.create_table(
        "authors",
        sa.Column("vk_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("screen_name", sa.String(255)),
        sa.Column("photo_url", sa.Text()),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("vk_id", name="pk_authors"),
    )

    op.create_table(
        "comments",
        _id(),
        sa.Column("group_id", Id, nullable=False),
        sa.Column("post_id", Id, nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("vk_id", sa.BigInteger(), nullable=False),
        sa.Column("post_vk_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_vk_id", sa.BigInteger()),
        sa.Column("parent_vk_id", sa.BigInteger()),
        sa.Column("from_id", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("published_at", Time, nullable=False),
        sa.Column("likes", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("viewed", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("archived", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("matches_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_comments"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_comments_group_id_groups", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name="fk_comments_post_id_posts", ondelete="CASCADE"),
        sa.UniqueConstraint("owner_id", "vk_id", name="uq_comments_owner_id_vk_id"),
    )
    op.create_index("ix_comments_post_id", "comments", ["post_id"])
    op.create_index("ix_comments_group_id_published_at_id", "comments", ["group_id", "published_at", "id"])
    op.create_index("ix_comments_published_at_id", "comments", ["published_at", "id"])
    op.create_index("ix_comments_likes_id", "comments", ["likes", "id"])
    op.create_index("ix_comments_matches_count_id", "comments", ["matches_count", "id"])
    op.create_index("ix_comments_from_id", "comments", ["from_id"])
    if op.get_context().dialect.name == "postgresql":
        # Full-text search of the comments filter; SQLite falls back to LIKE.
        op.execute("CREATE INDEX ix_comments_text_fts ON comments USING gin (to_tsvector('russian', text))")

    op.create_table(
        "keywords",
        _id(),
        sa.Column("word", sa.String(200), nullable=False),
        sa.Column("word_key", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100)),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("case_sensitive", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("whole_word", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("morphology", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_keywords"),
        sa.UniqueConstraint("word_key", name="uq_keywords_word_key"),
    )

    op.create_table(
        "matches",
        sa.Column("comment_id", Id, nullable=False),
        sa.Column("keyword_id", Id, nullable=False),
        sa.Column("matched_text", sa.Text(), nullable=False),
        sa.Column("start_pos", sa.Integer(), nullable=False),
        sa.Column("end_pos", sa.Integer(), nullable=False),
        sa.Column("snippet", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("comment_id", "keyword_id", "start_pos", name="pk_matches"),
        sa.ForeignKeyConstraint(
            ["comment_id"], ["comments.id"], name="fk_matches_comment_id_comments", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["keyword_id"], ["keywords.id"], name="fk_matches_keyword_id_keywords", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_matches_keyword_id", "matches", ["keyword_id"])

    op.create_table(
        "tasks",
        _id(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("5")),
        sa.Column("group_id", Id),
        sa.Column("params", Json, nullable=False),
        sa.Column("progress_done", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("progress_total", sa.Integer()),
        sa.Column("progress_message", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("started_at", Time),
        sa.Column("finished_at", Time),
        sa.Column("error", sa.Text()),
        sa.Column("result", Json),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_tasks_group_id_groups", ondelete="SET NULL"),
    )
    op.create_index("ix_tasks_state", "tasks", ["state"])
    op.create_index("ix_tasks_group_id_kind_state", "tasks", ["group_id", "kind", "state"])

    op.create_table(
        "api_tokens",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("last_used_at", Time),
        sa.Column("revoked_at", Time),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )


def downgrade() -> None:
    for table in ("api_tokens", "tasks", "matches", "keywords", "comments", "authors", "posts", "groups"):
        op.drop_table(table)
