"""The report of the deployed journeys, as the CLI, the API and the demo ask for it.

``ReportSource`` holds what every report needs besides the store (the contact policy, for the
fatigue curve against the global cap, and the member tiers, for channel effect by tier) and
builds a ``Report`` of the latest version of each journey asked for (every journey by default)
with ``engine.analytics.report.build_report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.analytics.model import Report
from engine.dsl.models import Journey
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.store import Store


class UnknownJourneys(LookupError):
    """Some journeys asked for are not deployed."""

    def __init__(self, journey_ids: Sequence[str]) -> None:
        self.journey_ids = list(journey_ids)
        super().__init__(
            f"not deployed: {', '.join(self.journey_ids)} (run `journey deploy` first)"
        )


async def deployed_journeys(store: Store, journey_ids: Sequence[str] | None) -> list[Journey]:
    """The latest version of each journey in ``journey_ids`` (all when None), in id order;
    UnknownJourneys names every id that is not deployed."""
    versions = await store.latest_versions()
    if journey_ids:
        missing = sorted(set(journey_ids) - {v.journey_id for v in versions})
        if missing:
            raise UnknownJourneys(missing)
        versions = [v for v in versions if v.journey_id in journey_ids]
    return [Journey.model_validate(v.definition) for v in versions]


@dataclass(frozen=True)
class ReportSource:
    store: Store
    policy: Policy
    tiers: Tiers | None = None

    async def __call__(
        self, journey_ids: Sequence[str] | None = None, *, now: datetime | None = None
    ) -> Report:
        journeys = await deployed_journeys(self.store, journey_ids)
        from engine.analytics.report import build_report

        report: Report = await build_report(
            self.store, journeys, policy=self.policy, tiers=self.tiers, now=now
        )
        return report


def write_report(path: Path, html: str) -> Path:
    """Write the page whole or not at all (a half-written report would open as a broken one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return path.resolve()
