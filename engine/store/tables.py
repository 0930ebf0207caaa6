"""The schema: one SQLAlchemy Core table per domain record.

The Alembic revisions in ``migrations/versions`` create exactly this schema (a test compares the
two); change both together. Other layers may read these tables directly (for example to evaluate a
segment's SQL condition over ``profiles``), but only the store writes them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from engine.store.columns import Json, UTCDateTime

PROFILE_ID_MAX = 128
IDENTITY_VALUE_MAX = 254

# Explicit constraint names so migrations are reproducible across backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

profiles = Table(
    "profiles",
    metadata,
    Column("id", String(PROFILE_ID_MAX), primary_key=True),
    Column("attributes", Json, nullable=False),
    Column("tags", Json, nullable=False, comment="sorted list of tag names"),
    Column("timezone", String(64), nullable=False),
    Column("locale", String(35), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    # BigInteger on PostgreSQL, plain INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements).
    Column(
        "pk", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("event_id", String, nullable=False, unique=True),
    Column("profile_id", String(PROFILE_ID_MAX), nullable=False),
    Column("name", String, nullable=False),
    Column("properties", Json, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column(
        "delivered_at",
        UTCDateTime,
        nullable=True,
        comment="when every listening journey got it; NULL while delivery is outstanding",
    ),
    Index(None, "profile_id", "name", "occurred_at"),
    Index(None, "name", "occurred_at"),
    # Only undelivered events are indexed: the redelivery sweep reads them, and the index stays
    # tiny because delivery normally completes within the request.
    Index(
        "ix_events_undelivered",
        "received_at",
        sqlite_where=text("delivered_at IS NULL"),
        postgresql_where=text("delivered_at IS NULL"),
    ),
)

journey_versions = Table(
    "journey_versions",
    metadata,
    Column("journey_id", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String, nullable=False),
    Column("definition", Json, nullable=False),
    Column("templates", Json, nullable=False),
    Column("source", Text, nullable=False),
    Column("deployed_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("journey_id", "version"),
    UniqueConstraint("journey_id", "content_hash"),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", String, primary_key=True),
    Column("journey_id", String, nullable=False),
    Column("journey_version", Integer, nullable=False),
    Column("profile_id", String(PROFILE_ID_MAX), nullable=False),
    Column("entered_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("exit_step", String, nullable=True),
    Column("exit_reason", Text, nullable=True),
    Column("path", Json, nullable=False),
    Column("variants", Json, nullable=False),
    Index(None, "journey_id", "profile_id", "entered_at"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("profile_id", String(PROFILE_ID_MAX), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("source", String(64), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("profile_id", "channel"),
)

identities = Table(
    "identities",
    metadata,
    Column("type", String(32), nullable=False),
    Column("value", String(IDENTITY_VALUE_MAX), nullable=False, comment="normalised"),
    Column("profile_id", String(PROFILE_ID_MAX), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("type", "value"),
    Index(None, "profile_id"),
)

merges = Table(
    "merges",
    metadata,
    Column("merged_id", String(PROFILE_ID_MAX), primary_key=True),
    Column(
        "survivor_id",
        String(PROFILE_ID_MAX),
        nullable=False,
        comment="always the final survivor: chains are flattened when a survivor merges again",
    ),
    Column("merged_at", UTCDateTime, nullable=False),
    Index(None, "survivor_id"),
)

segment_memberships = Table(
    "segment_memberships",
    metadata,
    Column("segment_id", String(64), nullable=False),
    Column("profile_id", String(PROFILE_ID_MAX), nullable=False),
    Column("entered_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("segment_id", "profile_id"),
    Index(None, "profile_id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("send_key", String, primary_key=True),
    Column("journey_id", String, nullable=False),
    Column("journey_version", Integer, nullable=False),
    Column("profile_id", String(PROFILE_ID_MAX), nullable=False),
    Column("step_id", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("template", String, nullable=False),
    Column("category", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("provider_message_id", String, nullable=True),
    Column("detail", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "profile_id", "created_at"),
    Index(None, "journey_id", "step_id"),
    # The report's last touch: the journey's latest send to a person before an order.
    Index(None, "journey_id", "profile_id", "created_at"),
)

journey_controls = Table(
    "journey_controls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("journey_id", String, nullable=False),
    Column("state", String(16), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("reason", Text, nullable=True),
    Index(None, "journey_id", "id"),
    comment="every change of a journey's state; the newest row per journey is its state",
)

entry_refusals = Table(
    "entry_refusals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("journey_id", String, nullable=False),
    Column("profile_id", String(PROFILE_ID_MAX), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("reason", String(64), nullable=False),
    Index(None, "profile_id", "at"),
)
