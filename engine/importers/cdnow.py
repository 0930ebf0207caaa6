"""The CDNOW purchase history (``CDNOW_master.txt``) as profiles and ``order_paid`` events.

Each customer becomes profile ``cdnow-<customer_id>`` (timezone America/New_York, attribute
``source: cdnow``; an existing profile is left as it is); each purchase line an ``order_paid``
event at midnight UTC of its date with properties ``amount`` (dollars) and ``cds``. Event ids
are ``cdnow-<customer>-<date>-<n>`` (n: the line's rank among that customer's lines of that
date), so a second import changes nothing.
With ``--today 1998-01-01`` (evaluation at 1998-01-01 00:00 UTC) a purchase of 1997-12-31 is
one day old and purchases from 1998-01-01 on are not yet made.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from engine.domain import Event, Profile
from engine.importers.errors import ImportProblems
from engine.importers.history import insert_history
from engine.store import Store

EVENT = "order_paid"
TIMEZONE = "America/New_York"
PROFILE_BATCH = 1000


@dataclass(frozen=True)
class Purchase:
    customer: str
    day: date
    cds: int
    dollars: Decimal
    rank: int
    """1 for the customer's first line of that day, 2 for the second..."""

    @property
    def profile_id(self) -> str:
        return profile_id(self.customer)

    @property
    def event_id(self) -> str:
        return f"cdnow-{self.customer}-{self.day:%Y%m%d}-{self.rank}"


@dataclass(frozen=True)
class ImportReport:
    profiles: int
    events: int
    new_events: int
    seconds: float


def profile_id(customer: str) -> str:
    return f"cdnow-{customer}"


def read_cdnow(path: Path) -> list[Purchase]:
    """Every purchase line of the file, in file order. Raises ImportProblems (every bad line)."""
    purchases: list[Purchase] = []
    problems: list[str] = []
    ranks: Counter[tuple[str, date]] = Counter()
    days: dict[str, date] = {}  # strptime would take most of the time of reading the file
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportProblems([f"{path}: cannot read: {exc}"]) from None
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or (number == 1 and parts[0] == "customer_id"):
            continue
        try:
            customer, day_text, cds_text, dollars_text = parts
            if not customer.isdigit():
                raise ValueError(f"customer id {customer!r} is not a number")
            day = days.get(day_text) or days.setdefault(day_text, _day(day_text))
            cds = int(cds_text)
            dollars = Decimal(dollars_text)
            if not dollars.is_finite() or cds < 0:
                raise ValueError("negative count or non-finite amount")
        except (ValueError, InvalidOperation) as exc:
            problems.append(
                f"{path}:{number}: expected 'customer_id YYYYMMDD cds dollars', got {line!r} "
                f"({exc})"
            )
            continue
        ranks[(customer, day)] += 1
        purchases.append(Purchase(customer, day, cds, dollars, ranks[(customer, day)]))
    if problems:
        raise ImportProblems(problems)
    return purchases


def _day(text: str) -> date:
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"date {text!r} is not YYYYMMDD")
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def to_event(purchase: Purchase) -> Event:
    return Event(
        event_id=purchase.event_id,
        profile_id=purchase.profile_id,
        name=EVENT,
        occurred_at=datetime.combine(purchase.day, datetime.min.time(), tzinfo=UTC),
        properties={"amount": float(purchase.dollars), "cds": purchase.cds},
    )


async def import_cdnow(store: Store, path: Path) -> ImportReport:
    """Import the file (see the module docstring); safe to repeat. Raises ImportProblems."""
    started = time.perf_counter()
    purchases = read_cdnow(path)
    customers = sorted({p.customer for p in purchases})
    # Profiles that exist already are left alone: they may have gained attributes since.
    existing = await store.get_profiles(profile_id(c) for c in customers)
    missing = [
        Profile(profile_id(c), {"source": "cdnow"}, timezone=TIMEZONE, locale="en-US")
        for c in customers
        if profile_id(c) not in existing
    ]
    # In slices: upsert_profiles takes a lock per profile, and PostgreSQL runs out of lock
    # slots (max_locks_per_transaction) with tens of thousands in one transaction.
    for start in range(0, len(missing), PROFILE_BATCH):
        await store.upsert_profiles(missing[start : start + PROFILE_BATCH])
    new = await insert_history(store, [to_event(p) for p in purchases])
    return ImportReport(len(customers), len(purchases), new, time.perf_counter() - started)
