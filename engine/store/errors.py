"""Errors raised by the store, one tree for the whole layer.

::

    StoreError                  base of everything the store raises on purpose
    ├── ProfileNotFound         ``update_profile`` on an id that was never upserted
    ├── VersionNotFound         ``get_version`` on a (journey, version) that was never deployed
    └── EnrollmentNotFound      ``finish_enrollment`` on an enrollment id that does not exist

Database failures (connection refused, lock timeouts) are not wrapped: they surface as
SQLAlchemy's ``OperationalError`` / ``DBAPIError`` so a caller (an activity) can let Temporal retry.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of the store's own errors."""


class ProfileNotFound(StoreError):
    def __init__(self, profile_id: str) -> None:
        super().__init__(f"profile {profile_id!r} not found")
        self.profile_id = profile_id


class VersionNotFound(StoreError):
    def __init__(self, journey_id: str, version: int) -> None:
        super().__init__(f"journey {journey_id!r} has no version {version}")
        self.journey_id = journey_id
        self.version = version


class EnrollmentNotFound(StoreError):
    def __init__(self, enrollment_id: str) -> None:
        super().__init__(f"enrollment {enrollment_id!r} not found")
        self.enrollment_id = enrollment_id
