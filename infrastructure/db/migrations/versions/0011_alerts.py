"""Alerts: rules, their channels, and the delivery outbox.

A delivery row is written in the transaction that stores a comment's matches (``domain.alerts``),
unique per (rule, channel, event), so a re-parse, a re-analysis, a second worker or a retried
job never alerts a comment twice; the delivery loop claims due rows under a lease.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("muted_until", Time),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("filter", Json, nullable=False),
        sa.Column("digest_minutes", sa.Integer),
        sa.Column("threshold_count", sa.Integer),
        sa.Column("threshold_minutes", sa.Integer),
        sa.Column("language", sa.String(8), nullable=False, server_default=sa.text("'en'")),
        sa.Column("system_events", Json, nullable=False),
        sa.Column("webhook_secret", sa.Text, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
    )
    op.create_table(
        "alert_channels",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("rule_id", Id, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("masked", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_channels"),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], ondelete="CASCADE", name="fk_alert_channels_rule_id_alert_rules"
        ),
    )
    op.create_index("ix_alert_channels_rule_id", "alert_channels", ["rule_id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("rule_id", Id, nullable=False),
        sa.Column("channel_id", Id, nullable=False),
        sa.Column("comment_id", Id),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("event", Json),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("next_attempt_at", Time, nullable=False),
        sa.Column("sent_at", Time),
        sa.Column("message_id", sa.String(64)),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", Time),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], ondelete="CASCADE", name="fk_alert_deliveries_rule_id_alert_rules"
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["alert_channels.id"],
            ondelete="CASCADE",
            name="fk_alert_deliveries_channel_id_alert_channels",
        ),
        sa.ForeignKeyConstraint(
            ["comment_id"], ["comments.id"], ondelete="CASCADE", name="fk_alert_deliveries_comment_id_comments"
        ),
        sa.UniqueConstraint(
            "rule_id", "channel_id", "event_key", name="uq_alert_deliveries_rule_id_channel_id_event_key"
        ),
    )
    op.create_index("ix_alert_deliveries_state_next_attempt_at", "alert_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_alert_deliveries_comment_id", "alert_deliveries", ["comment_id"])
    op.create_index("ix_alert_deliveries_channel_id", "alert_deliveries", ["channel_id"])


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alert_channels")
    op.drop_table("alert_rules")
