"""The nine numbers on the real CDNOW history equal a plain-Python count from the raw file.

The reference reads CDNOW_master.txt itself and applies the README's definitions with dates and
decimals, sharing no code with the importer or the SQL (the period is in UTC, where each
purchase sits at midnight of its day)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.analytics.kpis import nine_numbers
from engine.analytics.period import Period
from engine.dsl.tiers import Tiers
from engine.importers.cdnow import import_cdnow
from engine.store import Store

JUNE = Period(date(1997, 6, 1), date(1997, 6, 30))


def reference(path: Path, start: date, end: date) -> dict[str, tuple[int, int, int, Decimal]]:
    """group -> (traffic, buyers, orders, revenue) for the days start..end (included)."""
    before: dict[str, list[date]] = defaultdict(list)
    during: dict[str, list[Decimal]] = defaultdict(list)
    for line in path.read_text().splitlines()[1:]:
        customer, day, _cds, dollars = line.split()
        when = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        if when < start:
            before[customer].append(when)
        elif when <= end:
            during[customer].append(Decimal(dollars))
    totals: dict[str, list[object]] = {
        g: [0, 0, 0, Decimal(0)] for g in ("new", "returning", "dormant")
    }
    for customer in set(before) | set(during):
        days = before.get(customer)
        if not days or min(days) >= start - timedelta(days=30):
            group = "new"
        elif max(days) >= start - timedelta(days=60):
            group = "returning"
        else:
            group = "dormant"
        orders = during.get(customer, [])
        cell = totals[group]
        cell[0] += 1 if group == "dormant" or orders else 0  # type: ignore[operator]
        cell[1] += 1 if orders else 0  # type: ignore[operator]
        cell[2] += len(orders)  # type: ignore[operator]
        cell[3] += sum(orders, Decimal(0))  # type: ignore[operator]
    return {g: (int(c[0]), int(c[1]), int(c[2]), Decimal(c[3])) for g, c in totals.items()}  # type: ignore[call-overload]


@pytest.mark.timeout(300)
async def test_nine_numbers_match_a_plain_python_count(
    empty_store: Store, cdnow_path: Path
) -> None:
    await import_cdnow(empty_store, cdnow_path)
    kpis = await nine_numbers(empty_store, Tiers(), JUNE, "UTC", compare=True)
    for cells, period in ((kpis.cells, JUNE), (kpis.previous, JUNE.previous())):
        assert cells is not None
        expected = reference(cdnow_path, period.start, period.end)
        got = {c.group: c for c in cells}
        for group, (traffic, buyers, orders, revenue) in expected.items():
            cell = got[group]
            assert (cell.traffic, cell.buyers, cell.orders) == (traffic, buyers, orders), group
            assert cell.revenue == pytest.approx(float(revenue), abs=1e-6)
            assert cell.conversion_rate == (buyers / traffic if traffic else None)
            if orders:
                assert cell.average_order_value == pytest.approx(float(revenue) / orders)
    # the traffic the README quotes (June 1997 and the 30 days before)
    assert [c.traffic for c in kpis.cells] == [0, 1135, 19452]
    assert [c.traffic for c in kpis.previous or []] == [0, 1551, 13513]


async def test_a_period_with_no_data_is_zeros_and_n_a(empty_store: Store) -> None:
    kpis = await nine_numbers(empty_store, Tiers(), JUNE, "UTC", compare=False)
    assert kpis.previous is None
    assert [(c.traffic, c.conversion_rate, c.average_order_value) for c in kpis.cells] == [
        (0, None, None)
    ] * 3
