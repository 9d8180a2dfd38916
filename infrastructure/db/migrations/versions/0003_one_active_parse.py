"""At most one queued or running parse per community, enforced by the database.

Two starts racing (two schedulers' ticks, two operators' clicks) each checked for an active
parse, found none, and both inserted one. A partial unique index makes the second insert
lose; ``start_parse`` then returns the winner's task. Duplicates an earlier race left are
cancelled first (the oldest run is kept), or the index could not be built.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ACTIVE_PARSE = "kind = 'PARSE' AND state IN ('QUEUED', 'RUNNING')"


def upgrade() -> None:
    op.execute(
        f"""UPDATE tasks SET state = 'CANCELLED',
                error = 'a second run of the same community (cancelled by migration 0003)'
            WHERE {ACTIVE_PARSE} AND group_id IS NOT NULL
              AND id NOT IN (
                SELECT MIN(id) FROM tasks WHERE {ACTIVE_PARSE} AND group_id IS NOT NULL GROUP BY group_id
              )"""
    )
    op.create_index(
        "uq_tasks_one_active_parse", "tasks", ["group_id"], unique=True,
        postgresql_where=sa.text(ACTIVE_PARSE), sqlite_where=sa.text(ACTIVE_PARSE),
    )


def downgrade() -> None:
    op.drop_index("uq_tasks_one_active_parse", table_name="tasks")
