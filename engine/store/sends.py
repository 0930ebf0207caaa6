"""The send path's reads and writes, batched: what a send needs to know, and its delivery row.

A worker runs many send activities at once; each needs the same three facts (has this send key
been decided, who is the person, did they unsubscribe from the channel) and ends with one delivery
row. Asked one by one, that is four round trips and a commit per send. Here a batch of sends costs
two statements on one connection to read and one transaction to write, whatever its size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, null, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.domain import Delivery, Profile
from engine.store import records
from engine.store.columns import require_aware
from engine.store.core import CHUNK, chunks, dialect_insert
from engine.store.filters import among_param
from engine.store.tables import deliveries, merges, profiles, subscriptions


@dataclass(frozen=True)
class SendLookup:
    send_key: str
    profile_id: str
    channel: str


@dataclass(frozen=True)
class SendFacts:
    delivery: Delivery | None
    """The send key's row if it was decided before (a retried activity)."""
    profile: Profile | None
    """The person (the survivor's profile if the id was merged), or None if unknown."""
    unsubscribed: bool
    """The person unsubscribed from the lookup's channel."""
    merged: tuple[str, ...] = ()
    """The ids merged into the person, sorted: the cap service folds their counters into the
    survivor's before it counts a touch."""


async def read_facts(
    conn: AsyncConnection, lookups: Sequence[SendLookup]
) -> dict[SendLookup, SendFacts]:
    """The facts of each lookup, in two statements per chunk of ids: the deliveries, and the
    people (asked directly or through a merge) with the channels they unsubscribed from."""
    dialect = conn.dialect.name
    keys = list(dict.fromkeys(lookup.send_key for lookup in lookups))
    asked = list(dict.fromkeys(lookup.profile_id for lookup in lookups))
    decided: dict[str, Delivery] = {}
    for chunk in chunks(keys):
        rows = await conn.execute(_deliveries(dialect), {"keys": list(chunk)})
        decided.update({row.send_key: records.delivery(row) for row in rows})
    people: dict[str, Profile] = {}
    opted_out: dict[str, set[str]] = {}
    absorbed: dict[str, tuple[str, ...]] = {}
    for chunk in chunks(asked):
        for row in await conn.execute(_people(dialect), {"ids": list(chunk)}):
            person = records.profile(row)
            people[row.asked or row.id] = person
            opted_out[person.id] = set(row.unsubscribed.split("\n")) if row.unsubscribed else set()
            absorbed[person.id] = tuple(sorted(row.merged.split(_SEP))) if row.merged else ()
    facts: dict[SendLookup, SendFacts] = {}
    for lookup in lookups:
        found = people.get(lookup.profile_id)
        facts[lookup] = SendFacts(
            delivery=decided.get(lookup.send_key),
            profile=found,
            unsubscribed=found is not None and lookup.channel in opted_out[found.id],
            merged=absorbed[found.id] if found is not None else (),
        )
    return facts


@functools.cache
def _deliveries(dialect: str) -> Any:
    """Delivery rows by send key (``keys``), built once per dialect."""
    return select(deliveries).where(among_param(deliveries.c.send_key, "keys", dialect))


_SEP = "\x1f"
"""Joins merged profile ids in one column (the API refuses control characters in ids)."""


def _joined(column: Any, separator: str, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.string_agg(column, separator)
    return func.group_concat(column, separator)


@functools.cache
def _people(dialect: str) -> Any:
    """Profiles asked for by id (``ids``), and survivors asked for by a merged id (``asked``
    names it), each with its unsubscribed channels joined by newlines (channels are slugs) and
    the ids merged into it joined by ``_SEP``. Built once per dialect: building it cost more
    than running it."""
    opted_out = and_(
        subscriptions.c.profile_id == profiles.c.id, subscriptions.c.status == "unsubscribed"
    )
    unsubscribed = (
        select(_joined(subscriptions.c.channel, "\n", dialect))
        .where(opted_out)
        .scalar_subquery()
        .label("unsubscribed")
    )
    # A second alias: the join below already names ``merges``.
    absorbed = merges.alias("absorbed")
    merged_ids = (
        select(_joined(absorbed.c.merged_id, _SEP, dialect))
        .where(absorbed.c.survivor_id == profiles.c.id)
        .scalar_subquery()
        .label("merged")
    )
    direct = select(profiles, null().label("asked"), unsubscribed, merged_ids).where(
        among_param(profiles.c.id, "ids", dialect)
    )
    merged = (
        select(profiles, merges.c.merged_id.label("asked"), unsubscribed, merged_ids)
        .join_from(merges, profiles, merges.c.survivor_id == profiles.c.id)
        .where(among_param(merges.c.merged_id, "ids", dialect))
    )
    return union_all(direct, merged)


async def write_deliveries(
    conn: AsyncConnection, batch: Sequence[Delivery], now: datetime
) -> list[Delivery]:
    """Upsert each delivery in order, inside the caller's transaction; the rows as stored.

    A new send key is inserted. An existing one gets the new status, reason, provider message id
    and detail, except that (see :func:`_replaces`):

    - a row already ``sent`` is never changed: a retried send activity cannot turn a sent
      message into anything else;
    - ``attempting`` (an at-most-once send's claim) does not take a row that is ``attempting``
      or ``unknown``: one attempt per send key reaches the provider, and the caller learns from
      the row returned whether its claim won;
    - ``unknown`` only replaces ``attempting`` (the outcome it stands for was lost).

    A send key twice in one batch is written twice, in order, as if the calls had come one after
    the other.
    """
    statement = _upsert(conn.dialect.name)
    results: list[Delivery | None] = []
    for values in _rounds([_row(delivery, now) for delivery in batch]):
        # Rows a conflict left alone (already sent) return nothing; they are read below.
        written = await conn.execute(statement, values)
        stored = {row.send_key: records.delivery(row) for row in written}
        results.extend(stored.get(value["send_key"]) for value in values)
    kept = list(dict.fromkeys(d.send_key for d, r in zip(batch, results, strict=True) if r is None))
    unchanged: dict[str, Delivery] = {}
    for chunk in chunks(kept):
        found = await conn.execute(_deliveries(conn.dialect.name), {"keys": list(chunk)})
        unchanged.update({row.send_key: records.delivery(row) for row in found})
    return [
        result if result is not None else unchanged[delivery.send_key]
        for delivery, result in zip(batch, results, strict=True)
    ]


def _rounds(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive runs of rows with distinct send keys (one statement may touch a row once)."""
    current: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        if row["send_key"] in seen or len(current) == CHUNK:
            yield current
            current, seen = [], set()
        current.append(row)
        seen.add(row["send_key"])
    if current:
        yield current


def _row(delivery: Delivery, now: datetime) -> dict[str, Any]:
    return {
        "send_key": delivery.send_key,
        "journey_id": delivery.journey_id,
        "journey_version": delivery.journey_version,
        "profile_id": delivery.profile_id,
        "step_id": delivery.step_id,
        "channel": delivery.channel,
        "template": delivery.template,
        "category": delivery.category,
        "status": delivery.status,
        "reason": delivery.reason,
        "provider_message_id": delivery.provider_message_id,
        "detail": dict(delivery.detail),
        "created_at": require_aware(delivery.created_at),
        "updated_at": now,
    }


def _replaces(new: Any, old: Any) -> Any:
    """When a delivery written with status ``new`` replaces the stored one with status ``old``."""

    # Comparisons, not IN: an expanding IN cannot run in the batch's executemany.
    def in_flight(status: Any) -> Any:
        return or_(status == "attempting", status == "unknown")

    return and_(
        old != "sent",
        or_(
            ~in_flight(new),
            and_(new == "attempting", ~in_flight(old)),
            and_(new == "unknown", old == "attempting"),
        ),
    )


@functools.cache
def _upsert(dialect: str) -> Any:
    """The delivery upsert with RETURNING, built once per dialect (building it costs more than
    running it for a small batch)."""
    statement = dialect_insert(deliveries, dialect)
    return statement.on_conflict_do_update(
        index_elements=[deliveries.c.send_key],
        set_={
            "status": statement.excluded.status,
            "reason": statement.excluded.reason,
            "provider_message_id": statement.excluded.provider_message_id,
            "detail": statement.excluded.detail,
            "updated_at": statement.excluded.updated_at,
        },
        where=_replaces(statement.excluded.status, deliveries.c.status),
    ).returning(*deliveries.c)
