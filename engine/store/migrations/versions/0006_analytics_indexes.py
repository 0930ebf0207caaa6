"""analytics

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 00:00:00

The report's last touch of an order is the journey's last message sent to the person before it:
one index range per order on (journey, person, time) instead of every delivery of the person.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_journey_id_profile_id_created_at",
        "deliveries",
        ["journey_id", "profile_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_journey_id_profile_id_created_at", table_name="deliveries")
