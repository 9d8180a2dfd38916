"""Stalled tasks: when a task's progress last moved, and when (and how often) it was found stuck.

A RUNNING task whose runner still heartbeats but whose progress has not moved for the stall
timeout is stuck somewhere (a wedged loop, a dependency that never answers). The recovery loop
finds it by ``progress_at``, records ``stalled_at`` and ``stalls`` on the task, and has it run
again (see ``domain.tasks.recover_stalled``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("progress_at", Time))
        batch.add_column(sa.Column("stalled_at", Time))
        batch.add_column(sa.Column("stalls", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.execute("UPDATE tasks SET progress_at = COALESCE(updated_at, started_at, created_at) WHERE state = 'RUNNING'")


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("stalls")
        batch.drop_column("stalled_at")
        batch.drop_column("progress_at")
