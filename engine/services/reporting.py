"""The report of the deployed journeys, as the CLI, the API and the demo ask for it.

``ReportSource`` holds what every report needs besides the store (the contact policy, for the
fatigue curve against the global cap, and the member tiers, for channel effect by tier) and
builds a ``Report`` of the latest version of each journey asked for (every journey by default)
with `engine.services.report.journeys_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.analytics.model import Report
from engine.analytics.period import Period
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.services.report import UnknownJourney, deployed_journeys, journeys_report
from engine.store import Store

__all__ = ["ReportSource", "UnknownJourney", "deployed_journeys", "write_report"]


@dataclass(frozen=True)
class ReportSource:
    store: Store
    policy: Policy
    tiers: Tiers

    async def __call__(
        self,
        journey_ids: Sequence[str] | None = None,
        *,
        period: Period | None = None,
        sequential: bool = False,
        now: datetime | None = None,
    ) -> Report:
        return await journeys_report(
            self.store,
            journey_ids,
            policy=self.policy,
            tiers=self.tiers,
            period=period,
            sequential=sequential,
            now=now,
        )


def write_report(path: Path, html: str) -> Path:
    """Write the page whole or not at all (a half-written report would open as a broken one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return path.resolve()
