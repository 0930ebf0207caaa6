"""The delivery log as the store's interface: one row per send key."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select

from engine.domain import Delivery
from engine.store import records, sends
from engine.store.core import StoreCore
from engine.store.sends import SendFacts, SendLookup
from engine.store.tables import deliveries


class DeliveryStore(StoreCore):
    """The delivery log (see :class:`engine.store.Store`)."""

    async def get_delivery(self, send_key: str) -> Delivery | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(deliveries).where(deliveries.c.send_key == send_key))
            ).one_or_none()
        return None if row is None else records.delivery(row)

    async def send_facts(self, lookups: Sequence[SendLookup]) -> dict[SendLookup, SendFacts]:
        """What each send needs to know before it goes out (its earlier outcome, the person,
        their consent to the channel), for a whole batch of sends in one read."""
        async with self._engine.connect() as conn:
            return await sends.read_facts(conn, lookups)

    async def record_delivery(self, delivery: Delivery) -> Delivery:
        """Log the outcome of a send and return the row as stored (see
        :meth:`record_deliveries`)."""
        return (await self.record_deliveries([delivery]))[0]

    async def record_deliveries(self, batch: Sequence[Delivery]) -> list[Delivery]:
        """Log the outcomes of several sends in one transaction, in order; the rows as stored.

        A new send key is inserted. An existing one gets the new status, reason, provider message
        id and detail, except that a row already ``sent`` is never changed (a retried send activity
        cannot turn a sent message into anything else), an ``attempting`` claim never takes a row
        that is ``attempting`` or ``unknown``, and ``unknown`` only replaces ``attempting`` (see
        :func:`engine.store.sends.write_deliveries`).
        """
        now = self._clock()
        async with self._transaction() as conn:
            return await sends.write_deliveries(conn, batch, now)

    async def release_attempt(self, send_key: str) -> None:
        """Drop an ``attempting`` claim the provider refused (it did not take the message), so the
        retried send may claim again; a row in any other status is left alone."""
        async with self._transaction() as conn:
            await conn.execute(
                delete(deliveries).where(
                    deliveries.c.send_key == send_key, deliveries.c.status == "attempting"
                )
            )

    async def deliveries(
        self, *, journey_id: str | None = None, profile_id: str | None = None
    ) -> list[Delivery]:
        """Deliveries, oldest first, optionally only one journey's and/or one person's."""
        query = select(deliveries)
        if journey_id is not None:
            query = query.where(deliveries.c.journey_id == journey_id)
        if profile_id is not None:
            query = query.where(deliveries.c.profile_id == profile_id)
        query = query.order_by(deliveries.c.created_at, deliveries.c.send_key)
        async with self._engine.connect() as conn:
            return [records.delivery(row) for row in await conn.execute(query)]
