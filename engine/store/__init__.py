"""Persistence for the journey engine: an async SQLAlchemy store over SQLite or PostgreSQL.

``Store`` is the whole interface; ``tables`` is the schema (readable by the segment evaluator);
``errors`` is the error tree. Migrations ship in ``migrations/`` and run through ``Store.migrate``.
"""

from __future__ import annotations

from engine.store.errors import EnrollmentNotFound, ProfileNotFound, StoreError, VersionNotFound
from engine.store.records import EnrollmentClaim, RecordedEvent
from engine.store.sends import SendFacts, SendLookup
from engine.store.store import Store

__all__ = [
    "EnrollmentClaim",
    "EnrollmentNotFound",
    "ProfileNotFound",
    "RecordedEvent",
    "SendFacts",
    "SendLookup",
    "Store",
    "StoreError",
    "VersionNotFound",
]
