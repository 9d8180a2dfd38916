"""Tasks that wait for VK: when every token rests, a task waits instead of failing.

A parse that finds every VK token resting (a daily quota, a captcha) is stored QUEUED with
``waiting_until`` (when the first token comes back) and enqueued for then; ``waits`` counts
such waits apart from ``attempts``, so a wait never reads as a retry and each resumed run has
its own job id (see ``domain.tasks``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("waiting_until", Time))
        batch.add_column(sa.Column("waits", sa.Integer, nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("waits")
        batch.drop_column("waiting_until")
