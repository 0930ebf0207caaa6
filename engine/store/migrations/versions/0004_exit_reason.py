"""exit reason

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 00:00:00

Why a run ended (an exit step's ``reason``, the goal or exit_on event, the cap rule), shown by
``journey report`` and ``journey why``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop a column in place (downgrade), and add stays portable.
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("exit_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("exit_reason")
