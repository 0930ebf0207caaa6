"""The whole CDNOW file imported; segment counts as of 1998-01-01 equal a plain-Python count.

The reference below reads the raw file itself and applies the documented definitions
(journeys/tiers.yaml; engine.conditions.metrics) with dates and decimals, sharing no code with
the importer or the condition evaluators.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.dsl.loader import load_segment, load_tiers
from engine.importers.cdnow import import_cdnow
from engine.services.segments import count_members, preview_segment
from engine.store import Store
from engine.store.tables import events, profiles

REPO = Path(__file__).resolve().parents[2]
SEGMENTS = REPO / "journeys" / "segments"
TODAY = date(1998, 1, 1)


def reference(path: Path, today: date) -> dict[str, int]:
    """Segment id -> member count, computed from the raw file."""
    bought: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    customers: set[str] = set()
    for line in path.read_text().splitlines()[1:]:
        customer, day, _cds, dollars = line.split()
        customers.add(customer)
        when = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        if when < today:
            bought[customer].append((when, Decimal(dollars)))
    year_ago = today - timedelta(days=365)
    facts = {}
    for customer, purchases in bought.items():
        in_year = [amount for when, amount in purchases if when >= year_ago]
        facts[customer] = {
            "first": min(when for when, _ in purchases),
            "last": max(when for when, _ in purchases),
            "frequency": len(in_year),
            "monetary": sum(in_year, Decimal(0)),
        }

    def cuts(metric: str) -> list[object]:
        ordered = sorted(f[metric] for f in facts.values())
        return [ordered[math.ceil(k * len(ordered) / 5) - 1] for k in range(1, 5)]

    cut_points = {m: cuts(m) for m in ("last", "frequency", "monetary")}

    def score(customer: str, metric: str) -> int:
        value = facts[customer][metric]
        return 1 + sum(1 for c in cut_points[metric] if value > c)  # type: ignore[operator]

    def stage(customer: str) -> str:
        if customer not in facts:
            return "prospect"
        f = facts[customer]
        if f["first"] >= today - timedelta(days=30):
            return "new"
        if f["last"] >= today - timedelta(days=60):
            return "active"
        if f["last"] >= today - timedelta(days=120):
            return "dormant"
        return "churned"

    def tier(customer: str) -> str | None:
        if customer not in facts:
            return None
        spend, orders = facts[customer]["monetary"], facts[customer]["frequency"]
        if spend >= 1000:
            return "diamond"
        if spend >= 300 or orders >= 8:
            return "gold"
        if spend >= 100 or orders >= 3:
            return "silver"
        return "bronze"

    counts: dict[str, int] = defaultdict(int)
    for customer in customers:
        counts[f"lifecycle_{stage(customer)}"] += 1
        if (t := tier(customer)) is not None:
            counts[f"tier_{t}"] += 1
        if customer not in facts:
            continue
        r, f, m = (score(customer, x) for x in ("last", "frequency", "monetary"))
        counts["rfm_champions"] += r >= 4 and f >= 4 and m >= 4
        counts["rfm_at_risk"] += r <= 2 and (f >= 4 or m >= 4)
        counts["rfm_dormant_60_120"] += 60 <= (today - facts[customer]["last"]).days <= 120
    return counts


SEGMENT_IDS = [
    *(f"lifecycle_{s}" for s in ("prospect", "new", "active", "dormant", "churned")),
    *(f"tier_{t}" for t in ("bronze", "silver", "gold", "diamond")),
    "rfm_champions",
    "rfm_at_risk",
    "rfm_dormant_60_120",
]


@pytest.mark.timeout(240)
async def test_cdnow_segments_match_a_plain_python_count(
    empty_store: Store, cdnow_path: Path
) -> None:
    store = empty_store
    report = await import_cdnow(store, cdnow_path)
    assert (report.profiles, report.events, report.new_events) == (23_570, 69_659, 69_659)
    again = await import_cdnow(store, cdnow_path)
    assert again.new_events == 0  # idempotent: nothing changes the second time
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(profiles))).scalar() == 23_570
        total = (await conn.execute(select(func.count()).select_from(events))).scalar()
        assert total == 69_659

    rules = load_tiers(REPO / "journeys" / "tiers.yaml")
    now = datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC)
    expected = reference(cdnow_path, TODAY)
    got = {}
    for segment_id in SEGMENT_IDS:
        segment = load_segment(SEGMENTS / f"{segment_id}.yaml")
        got[segment_id] = await count_members(store, segment.condition, now, rules=rules)
    assert got == {s: expected.get(s, 0) for s in SEGMENT_IDS}
    # Every customer is in exactly one stage and (having bought) exactly one tier.
    assert sum(got[f"lifecycle_{s}"] for s in ("new", "active", "dormant", "churned")) == 23_570
    assert sum(got[f"tier_{t}"] for t in ("bronze", "silver", "gold", "diamond")) == 23_570
    assert got["lifecycle_dormant"] > 0 and got["rfm_champions"] > 0 and got["tier_gold"] > 0

    preview = await preview_segment(
        store, load_segment(SEGMENTS / "tier_diamond.yaml"), now, rules=rules, sample=3
    )
    assert preview.count == got["tier_diamond"]
    assert len(preview.sample) == 3 and preview.sample == sorted(preview.sample)
