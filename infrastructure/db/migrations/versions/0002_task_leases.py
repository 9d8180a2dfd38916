"""Task leases: the runner holding a task and its heartbeat; the task's last change time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("updated_at", Time))
        batch.add_column(sa.Column("worker_id", sa.String(128)))
        batch.add_column(sa.Column("heartbeat_at", Time))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("worker_id")
        batch.drop_column("updated_at")
