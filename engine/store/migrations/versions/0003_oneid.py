"""oneid

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:00:00

OneID (identities, merges), segment memberships, and the events' delivery mark (an event is
delivered again until every listening journey got it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("value", sa.String(254), nullable=False, comment="normalised"),
        sa.Column("profile_id", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("type", "value", name="pk_identities"),
    )
    op.create_index("ix_identities_profile_id", "identities", ["profile_id"])
    op.create_table(
        "merges",
        sa.Column("merged_id", sa.String(128), nullable=False),
        sa.Column(
            "survivor_id",
            sa.String(128),
            nullable=False,
            comment="always the final survivor: chains are flattened when a survivor merges again",
        ),
        sa.Column("merged_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("merged_id", name="pk_merges"),
    )
    op.create_index("ix_merges_survivor_id", "merges", ["survivor_id"])
    op.create_table(
        "segment_memberships",
        sa.Column("segment_id", sa.String(64), nullable=False),
        sa.Column("profile_id", sa.String(128), nullable=False),
        sa.Column("entered_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("segment_id", "profile_id", name="pk_segment_memberships"),
    )
    op.create_index("ix_segment_memberships_profile_id", "segment_memberships", ["profile_id"])
    # Existing events were delivered when they came in (or never will be): mark them so.
    op.add_column(
        "events",
        sa.Column(
            "delivered_at",
            TS,
            nullable=True,
            comment="when every listening journey got it; NULL while delivery is outstanding",
        ),
    )
    op.execute("UPDATE events SET delivered_at = received_at")
    op.create_index(
        "ix_events_undelivered",
        "events",
        ["received_at"],
        sqlite_where=sa.text("delivered_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_undelivered", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("delivered_at")
    op.drop_table("segment_memberships")
    op.drop_table("merges")
    op.drop_table("identities")
