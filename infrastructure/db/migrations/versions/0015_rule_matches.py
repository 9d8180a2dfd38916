"""Saved rules' matches, stored: ``rule_matches`` and the rules' index state.

A filter that is a saved rule (``rule:"name"``), a rule's ``matchesCount`` and ``stats.topRules``
checked every candidate comment in Python: 1–2 s at 250,000 comments. Now the comments each
saved rule matches are stored, as keyword matches are, and counted and paged off the index
(rule_id, published_at, comment_id). Existing rules start unindexed (``indexed_at`` NULL):
readers run their queries as before until an INDEX_RULES task has built their matches.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("rules", sa.Column("indexed_at", Time))
    op.add_column("rules", sa.Column("index_generation", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.create_table(
        "rule_matches",
        sa.Column("rule_id", Id, sa.ForeignKey("rules.id", ondelete="CASCADE"), nullable=False),
        sa.Column("comment_id", Id, sa.ForeignKey("comments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("published_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "comment_id"),
    )
    op.create_index(
        "ix_rule_matches_rule_id_published_at_comment_id", "rule_matches", ["rule_id", "published_at", "comment_id"]
    )
    op.create_index("ix_rule_matches_comment_id", "rule_matches", ["comment_id"])


def downgrade() -> None:
    op.drop_table("rule_matches")
    with op.batch_alter_table("rules") as batch:
        batch.drop_column("index_generation")
        batch.drop_column("indexed_at")
