"""Transaction-scoped locks on keys that may not exist as rows yet (a person's first entry into a
journey, an identity nobody owns yet), and the table locks that keep merges and writers apart.

PostgreSQL: advisory locks held until the transaction ends, each statement taking its keys in a
fixed order. A transaction that takes locks in several statements can still deadlock with
another; PostgreSQL then aborts one of them, and the store retries it (``engine.store.retry``).
SQLite: ``BEGIN IMMEDIATE`` takes the database write lock, which serialises every writer anyway;
call :func:`lock_keys` with ``first=True`` before any other statement of the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Text

ENROLLMENT = 0x454E  # "EN": (journey, person) pairs
IDENTITY = 0x4944  # "ID": identities and profile ids being identified
SEGMENT = 0x5347  # "SG": a segment's membership, replaced whole

BUCKETS = 128
"""Keys are hashed into this many locks per namespace, so one transaction holds at most 128 of
PostgreSQL's lock slots (``max_locks_per_transaction`` x connections, 6,400 by default),
however many keys it locks; keys sharing a bucket only wait for each other."""

_ORDERED = (
    f"(SELECT DISTINCT hashtext(x) & {BUCKETS - 1} AS k FROM unnest(:keys) AS x ORDER BY k)"
    " AS ordered"
)
_LOCK = text(f"SELECT count(pg_advisory_xact_lock(:namespace, k)) FROM {_ORDERED}").bindparams(
    bindparam("keys", type_=ARRAY(Text()))
)
_LOCK_SHARED = text(
    f"SELECT count(pg_advisory_xact_lock_shared(:namespace, k)) FROM {_ORDERED}"
).bindparams(bindparam("keys", type_=ARRAY(Text())))


async def lock_keys(
    conn: AsyncConnection,
    namespace: int,
    keys: Iterable[str],
    *,
    first: bool = True,
    shared: bool = False,
) -> None:
    """Hold a lock on each of ``keys`` (within ``namespace``) until the transaction ends.

    Keys are hashed into ``BUCKETS`` locks: two different keys may share one, which only
    serialises them.
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


async def writing(conn: AsyncConnection, *tables: str) -> None:
    """Declare, before reading anything, that this transaction will write rows of ``tables``
    for profile ids it resolves through merges (events, profile upserts).

    PostgreSQL: ``ROW EXCLUSIVE``, which every writer takes anyway and which writers share;
    taking it first means a merge (:func:`merging`) waits for this transaction, and this
    transaction waits for a merge already under way, so no row is written for an id that was
    merged away in between. One lock per table, however many rows. SQLite: the write lock.
    """
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(f"LOCK TABLE {', '.join(tables)} IN ROW EXCLUSIVE MODE")
    else:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def merging(conn: AsyncConnection, *tables: str) -> None:
    """Wait for every transaction writing ``tables`` (see :func:`writing`) and keep new ones
    out until this transaction ends (PostgreSQL ``SHARE ROW EXCLUSIVE``; SQLite already holds
    its write lock). Merges are rare and short; ingestion pauses for their milliseconds."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE")
