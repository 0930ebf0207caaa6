"""A reporting period: whole days, from ``start`` to ``end`` inclusive, in the policy's timezone.

``--from 2026-11-01 --to 2026-11-30`` is November: from 2026-11-01 00:00 to 2026-12-01 00:00
in the policy's timezone (Asia/Shanghai by default). The previous period is the same number of
days just before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class PeriodError(ValueError):
    """A period that cannot be read; the message names what is wrong."""


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    """The last day, included."""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(f"the period ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def instants(self, timezone: str) -> tuple[datetime, datetime]:
        """[start, end) as aware UTC instants: the first day's midnight to the day after the
        last one's, in ``timezone``."""
        zone = ZoneInfo(timezone)
        first = datetime.combine(self.start, time(), zone)
        after = datetime.combine(self.end + timedelta(days=1), time(), zone)
        return first.astimezone(UTC), after.astimezone(UTC)

    def __str__(self) -> str:
        return f"{self.start} to {self.end}"


def parse_day(text: str, flag: str) -> date:
    """A ``YYYY-MM-DD`` day; PeriodError naming ``flag`` otherwise."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"{flag}: expected a day as YYYY-MM-DD, got {text!r}") from None
