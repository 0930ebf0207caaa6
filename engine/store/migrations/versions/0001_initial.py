"""initial

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Profiles, events, journey versions, enrollments and deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types (a revision must not change when engine code does).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("attributes", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False, comment="sorted list of tag names"),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_profiles"),
    )
    op.create_table(
        "events",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("profile_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    op.create_index(
        "ix_events_profile_id_name_occurred_at", "events", ["profile_id", "name", "occurred_at"]
    )
    op.create_index("ix_events_name_occurred_at", "events", ["name", "occurred_at"])
    op.create_table(
        "journey_versions",
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("templates", JSON, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("deployed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("journey_id", "version", name="pk_journey_versions"),
        sa.UniqueConstraint(
            "journey_id", "content_hash", name="uq_journey_versions_journey_id_content_hash"
        ),
    )
    op.create_table(
        "enrollments",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("journey_version", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.String(128), nullable=False),
        sa.Column("entered_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("exit_step", sa.String(), nullable=True),
        sa.Column("path", JSON, nullable=False),
        sa.Column("variants", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_enrollments"),
    )
    op.create_index(
        "ix_enrollments_journey_id_profile_id_entered_at",
        "enrollments",
        ["journey_id", "profile_id", "entered_at"],
    )
    op.create_table(
        "deliveries",
        sa.Column("send_key", sa.String(), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("journey_version", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.String(128), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("template", sa.String(), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.String(), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("send_key", name="pk_deliveries"),
    )
    op.create_index(
        "ix_deliveries_profile_id_created_at", "deliveries", ["profile_id", "created_at"]
    )
    op.create_index("ix_deliveries_journey_id_step_id", "deliveries", ["journey_id", "step_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("enrollments")
    op.drop_table("journey_versions")
    op.drop_table("events")
    op.drop_table("profiles")
