"""Every example journey in journeys/ deploys: its graph is valid and its templates compile
for the channels it sends them on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engine.services.deploy import deploy_file, journey_files
from tests.harness import sqlite_store

JOURNEYS = Path(__file__).resolve().parent.parent / "journeys"


async def test_every_example_journey_deploys(tmp_path: Path) -> None:
    store = await sqlite_store(tmp_path)
    journeys, others = journey_files(sorted(JOURNEYS.glob("*.yaml")))
    assert {p.stem for p in journeys} >= {
        "cart_recovery", "welcome", "winback", "fruit_day", "copy_test",
        "send_time_test", "replenishment", "tier_upgrade",
    }  # fmt: skip
    assert "policy" in {p.stem for p, _ in others}
    for path in journeys:
        version, created = await deploy_file(store, path, datetime.now(UTC))
        assert created and version.version == 1
        again, created = await deploy_file(store, path, datetime.now(UTC))
        assert (again.version, created) == (1, False)
    await store.aclose()
