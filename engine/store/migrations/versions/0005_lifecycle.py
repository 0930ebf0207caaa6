"""lifecycle

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 00:00:00

Journey states set by operators (pause, resume, stop, archive), each change kept with who, when
and why; entries a journey's state refused, for ``journey why``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "journey_controls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("changed_at", TS, nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_journey_controls"),
        comment="every change of a journey's state; the newest row per journey is its state",
    )
    op.create_index("ix_journey_controls_journey_id_id", "journey_controls", ["journey_id", "id"])
    op.create_table(
        "entry_refusals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("profile_id", sa.String(128), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_entry_refusals"),
    )
    op.create_index("ix_entry_refusals_profile_id_at", "entry_refusals", ["profile_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_entry_refusals_profile_id_at", table_name="entry_refusals")
    op.drop_table("entry_refusals")
    op.drop_index("ix_journey_controls_journey_id_id", table_name="journey_controls")
    op.drop_table("journey_controls")
