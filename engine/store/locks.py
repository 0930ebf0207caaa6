"""Transaction-scoped locks on keys that may not exist as rows yet (a person's first entry into a
journey, an identity nobody owns yet, a profile id being merged away).

PostgreSQL: advisory locks held until the transaction ends, each statement taking its keys in a
fixed order. A transaction that takes locks in several statements can still deadlock with
another; PostgreSQL then aborts one of them, and the store retries it (:func:`retryable`).
SQLite: ``BEGIN IMMEDIATE`` takes the database write lock, which serialises every writer anyway;
call :func:`lock_keys` with ``first=True`` before any other statement of the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Text

ENROLLMENT = 0x454E  # "EN": (journey, person) pairs
IDENTITY = 0x4944  # "ID": identities and profile ids (identify exclusive, event recording shared)
EVENT = 0x4556  # "EV": event ids being recorded
SEGMENT = 0x5347  # "SG": a segment's membership, replaced whole

_ORDERED = "(SELECT DISTINCT hashtext(x) AS k FROM unnest(:keys) AS x ORDER BY k) AS ordered"
_LOCK = text(f"SELECT count(pg_advisory_xact_lock(:namespace, k)) FROM {_ORDERED}").bindparams(
    bindparam("keys", type_=ARRAY(Text()))
)
_LOCK_SHARED = text(
    f"SELECT count(pg_advisory_xact_lock_shared(:namespace, k)) FROM {_ORDERED}"
).bindparams(bindparam("keys", type_=ARRAY(Text())))

# deadlock_detected, serialization_failure: the transaction did nothing and may run again.
_RETRYABLE_PGCODES = frozenset({"40P01", "40001"})


async def lock_keys(
    conn: AsyncConnection,
    namespace: int,
    keys: Iterable[str],
    *,
    first: bool = True,
    shared: bool = False,
) -> None:
    """Hold a lock on each of ``keys`` (within ``namespace``) until the transaction ends.

    Keys are hashed to 32 bits: two different keys may share a lock, which only serialises them.
    ``first``: this is the transaction's first statement (SQLite takes its write lock here).
    ``shared``: a shared lock, which only excludes exclusive holders of the same key.
    """
    if conn.dialect.name == "postgresql":
        wanted = sorted(set(keys))
        if wanted:
            statement = _LOCK_SHARED if shared else _LOCK
            await conn.execute(statement, {"namespace": namespace, "keys": wanted})
    elif first:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


def retryable(exc: DBAPIError) -> bool:
    """A unique-key race lost, or a PostgreSQL deadlock / serialisation failure: the
    transaction was rolled back whole and running it again is safe."""
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_PGCODES
