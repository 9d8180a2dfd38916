"""Comments keep whom a reply answers: ``reply_to_user`` (VK's ``reply_to_user``).

VK says, for a reply, the id of the user it answers. The collector read it and dropped it; a
moderator reading a thread wants to know who was addressed. NULL for a top-level comment, for
one collected before this revision (until a re-read of its post), and when VK did not say.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("comments", sa.Column("reply_to_user", sa.BigInteger()))


def downgrade() -> None:
    # Not a batch: SQLite's rebuild drops the old table, and with it (ON DELETE CASCADE) every
    # match. ALTER TABLE ... DROP COLUMN is SQLite's own since 3.35 (as 0009's downgrade does).
    op.execute("ALTER TABLE comments DROP COLUMN reply_to_user")
