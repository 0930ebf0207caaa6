"""`journey simulate`: the real workflow, policy and caps on a time-skipping Temporal and a
throwaway Redis, for one person or a segment sample; the real store is only read."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from engine.cli.main import app
from engine.domain import Delivery, Enrollment, Event, Profile
from engine.services.deploy import deploy_file
from engine.store import Store
from tests.harness import sqlite_store

REPO = Path(__file__).resolve().parents[2]


def daytime_zone() -> str:
    """A fixed-offset zone where it is now between 10:00 and 14:00, so quiet hours (21:00 to
    09:00) never touch a rehearsal of a day or two, whenever the test runs."""
    hour = datetime.now(UTC).hour
    offset = next(o for o in range(-12, 15) if 10 <= (hour + o) % 24 <= 14)
    # Etc/GMT signs are inverted: Etc/GMT-8 is UTC+8.
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


def shopper(profile_id: str, zone: str, **attributes: Any) -> Profile:
    return Profile(
        profile_id,
        {
            "first_name": "磊",
            "email": f"{profile_id}@example.com",
            "phone": "13800138000",
            "wecom_external_userid": f"wx-{profile_id}",
            "cart_value": 250,
            "carted_days_ago": 1,
            **attributes,
        },
        timezone=zone,
    )


async def seed_store(store: Store, zone: str) -> None:
    """cart-recovery deployed, a VIP shopper p1 and 11 more carted people, q00 live in it."""
    people = [shopper("p1", zone)] + [shopper(f"q{n:02d}", zone, cart_value=50) for n in range(11)]
    await store.upsert_profiles([*people, shopper("other", zone, carted_days_ago=5)])
    await deploy_file(store, REPO / "journeys" / "cart_recovery.yaml", datetime.now(UTC))
    # q00 is in the journey right now in production: the forecast must not enter them.
    await store.create_enrollment(
        Enrollment("e-live", "cart-recovery", 1, "q00", datetime.now(UTC) - timedelta(hours=2))
    )


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real store with cart-recovery deployed, a VIP shopper p1 and 11 more carted people."""
    zone = daytime_zone()

    async def seed() -> None:
        store = await sqlite_store(tmp_path)
        await seed_store(store, zone)
        await store.aclose()

    asyncio.run(seed())
    monkeypatch.setenv("JOURNEY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}")
    monkeypatch.setenv("JOURNEY_HOME", str(tmp_path))
    monkeypatch.setenv("JOURNEY_JOURNEYS_DIR", str(REPO / "journeys"))
    monkeypatch.delenv("JOURNEY_POLICY_PATH", raising=False)
    return tmp_path / "journey.db"


def checksum(path: Path) -> str:
    """Every row of every table, in a stable order."""
    digest = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in sorted(tables):
            rows = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
            digest.update(repr((table, rows)).encode())
    return digest.hexdigest()


def simulate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.timeout(90)
def test_a_person_converts_on_an_injected_event_and_nothing_is_written(store_path: Path) -> None:
    before = checksum(store_path)

    code, out, err = simulate(
        "cart-recovery", "--profile", "p1", "--days", "14", "--event", "order_paid@+1d", "--json"
    )

    assert code == 0, err
    run = json.loads(out)
    assert (run["entered"], run["status"]) == ("started", "converted")
    kinds = [(e["kind"], e["step"]) for e in run["timeline"]]
    assert kinds[:3] == [("entered", None), ("step", "pause"), ("step", "value")]
    sends = [e for e in run["timeline"] if e["kind"] == "send" and "decision" in e]
    assert [(s["step"], s["channel"], s["decision"]) for s in sends] == [
        ("vip_offer", "wecom", "sent")
    ]
    event = next(e for e in run["timeline"] if e["kind"] == "event")
    end = run["timeline"][-1]
    assert event["name"] == "order_paid" and end["kind"] == "end"
    assert end["status"] == "converted" and end["step"] == "wait_pay"
    start = datetime.fromisoformat(run["start"])
    assert datetime.fromisoformat(event["at"]) - start == timedelta(days=1)
    # Times are the person's own: the offset of their zone, not UTC.
    offset = datetime.now(ZoneInfo(run["timezone"])).isoformat()[-6:]
    assert all(e["at"].endswith(offset) for e in run["timeline"])
    assert run["messages_recorded"] == 1
    assert checksum(store_path) == before


@pytest.mark.timeout(90)
def test_the_timeline_says_why_a_send_was_held_back(store_path: Path) -> None:
    code, out, err = simulate("cart-recovery", "--profile", "p1", "--days", "4")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("cart-recovery v1 for p1, 4 days")
    assert lines[0].endswith("caps start from 0 earlier send(s) of the last 90 days")
    nudge = [line.split(maxsplit=3)[-1] for line in lines if " nudge " in line]
    # Two days after the VIP offer, the last call waits out the arbitration window, then the
    # journey's own cap refuses it, with the count.
    assert nudge == [
        "send email (cart_last_call): waits out the arbitration window",
        "send email (cart_last_call): not sent — journey:cart-recovery:1/1w (1 of 1 used)",
    ]
    assert any(line.endswith("end: completed at step done") for line in lines)
    assert lines[-1].startswith("rehearsed in ")


@pytest.mark.timeout(90)
def test_caps_start_from_the_persons_real_sends(store_path: Path) -> None:
    async def sent_this_morning() -> None:
        store = await sqlite_store(store_path.parent)
        await store.record_delivery(
            Delivery(
                send_key="e-old:hello:1",
                journey_id="welcome",
                journey_version=1,
                profile_id="p1",
                step_id="hello",
                channel="sms",
                template="welcome_sms",
                category="marketing",
                status="sent",
                created_at=datetime.now(UTC) - timedelta(hours=2),
            )
        )
        await store.aclose()

    asyncio.run(sent_this_morning())
    before = checksum(store_path)

    code, out, err = simulate("cart-recovery", "--profile", "p1", "--days", "3", "--json")

    assert code == 0, err
    run = json.loads(out)
    assert run["past_touches"] == 1
    vip = [e for e in run["timeline"] if e.get("decision") and e["step"] == "vip_offer"]
    # One marketing touch a day: the VIP offer is held until a day after this morning's SMS
    # (and, should that fall in the night, until the quiet hours end).
    held, sent = vip[0], vip[-1]
    assert (held["decision"], held["reason"], held["detail"]["count"]) == (
        "deferred",
        "global:1/1d",
        "1",
    )
    assert all(e["reason"] == "quiet_hours" for e in vip[1:-1])
    assert sent["decision"] == "sent"
    assert datetime.fromisoformat(sent["at"]) >= datetime.fromisoformat(held["detail"]["retry_at"])
    assert checksum(store_path) == before


@pytest.mark.timeout(90)
def test_reentry_rules_answer_from_the_persons_real_ledger(store_path: Path) -> None:
    now = datetime.now(UTC)

    async def earlier_runs() -> None:
        store = await sqlite_store(store_path.parent)
        for enrollment_id, profile_id, days_ago in (("e-p1", "p1", 10), ("e-q05", "q05", 2)):
            entered = now - timedelta(days=days_ago)
            await store.create_enrollment(
                Enrollment(enrollment_id, "cart-recovery", 1, profile_id, entered, "completed")
            )
        await store.aclose()

    asyncio.run(earlier_runs())

    # Ten days ago is past the 7-day cooldown: p1 enters, and the run is the new one.
    code, out, err = simulate("cart-recovery", "--profile", "p1", "--days", "2", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["entered"] == "started"
    assert run["timeline"][0]["kind"] == "entered"
    assert datetime.fromisoformat(run["timeline"][0]["at"]) >= now

    # Two days ago is within it: q05 would not enter, and the rehearsal says why.
    code, out, err = simulate("cart-recovery", "--profile", "q05", "--days", "2")
    assert code == 0, err
    assert "not entered: reentry after, cooldown 1w; last entered" in out


BROWSED = """
id: browse-nudge
name: Browse nudge
entry: {api: true}
steps:
  - id: looked
    branch:
      - {when: {event: product_viewed, within: 2d, count: {gte: 2}}, goto: nudge}
      - {else: done}
  - {id: nudge, send: {channel: sms, template: nudge}}
  - {id: done, exit: {}}
"""


@pytest.mark.timeout(90)
def test_a_journey_file_not_deployed_branches_on_the_persons_real_events(
    store_path: Path, tmp_path: Path
) -> None:
    async def browsing() -> None:
        store = await sqlite_store(store_path.parent)
        yesterday = datetime.now(UTC) - timedelta(days=1)
        await store.record_events(
            [Event(f"v{n}", "p1", "product_viewed", yesterday) for n in range(3)]
        )
        await store.aclose()

    asyncio.run(browsing())
    (tmp_path / "draft" / "templates").mkdir(parents=True)
    (tmp_path / "draft" / "browse.yaml").write_text(BROWSED, encoding="utf-8")
    (tmp_path / "draft" / "templates" / "nudge.yaml").write_text(
        'text: "{{ profile.first_name }}，还在看吗？回T退订"\n', encoding="utf-8"
    )
    before = checksum(store_path)

    path = str(tmp_path / "draft" / "browse.yaml")
    code, out, err = simulate(path, "--profile", "p1", "--days", "1", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["version"] == path
    steps = [e["step"] for e in run["timeline"] if e["kind"] in ("step", "send")]
    assert steps[:2] == ["looked", "nudge"]
    code, out, err = simulate(path, "--profile", "q01", "--days", "1", "--json")
    assert [e["step"] for e in json.loads(out)["timeline"] if e["kind"] == "step"] == [
        "looked",
        "done",
    ]
    assert checksum(store_path) == before


@pytest.mark.timeout(120)
def test_a_segment_forecast_counts_entries_and_sends_per_day(store_path: Path) -> None:
    before = checksum(store_path)

    code, out, err = simulate(
        "cart-recovery", "--segment", "carted_not_paid_yesterday", "--days", "3", "--json"
    )

    assert code == 0, err
    forecast = json.loads(out)
    assert (forecast["members"], forecast["sample"]) == (12, 12)
    assert forecast["entered"] == {"started": 11, "live": 1}
    assert [d["day"] for d in forecast["per_day"]] == [1, 2, 3]
    totals = forecast["totals"]
    for kind in ("sent", "deferred", "capped", "dropped", "failed"):
        assert totals[kind] == sum(d["counts"][kind] for d in forecast["per_day"])
    # Day 1: each of the 11 gets the first message, except the split's holdout.
    assert 0 < forecast["per_day"][0]["counts"]["sent"] <= 11
    assert sum(forecast["statuses"].values()) == 11
    assert checksum(store_path) == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--profile", "p1"], "unknown journey 'nope'"),
        (["cart-recovery", "--profile", "p999"], "unknown person 'p999'"),
        (["cart-recovery", "--profile", "p1", "--event", "order_paid@3d"], "malformed --event"),
        (["cart-recovery", "--profile", "p1", "--event", "order_paid@+3x"], "bad offset '3x'"),
        (["cart-recovery", "--segment", "nope"], "unknown segment 'nope'"),
        (["cart-recovery", "--profile", "p1", "--event", "order_paid@+3w"], "past --days 14"),
        (["journeys/missing.yaml", "--profile", "p1"], "unknown journey 'journeys/missing.yaml'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    store_path: Path, args: list[str], message: str
) -> None:
    before = checksum(store_path)

    code, out, err = simulate(*args)

    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert out == ""
    assert checksum(store_path) == before


@pytest.mark.timeout(90)
def test_a_runs_logs_are_json_lines_without_the_seeded_addresses(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEY_LOG_LEVEL", "debug")
    monkeypatch.setenv("JOURNEY_LOG_FORMAT", "json")

    code, out, err = simulate("cart-recovery", "--profile", "p1", "--days", "4", "--json")

    assert code == 0 and json.loads(out)["status"] == "completed"
    logged = [json.loads(line) for line in err.splitlines()]
    assert all({"timestamp", "level", "event"} <= line.keys() for line in logged)
    deliveries = [line for line in logged if line["event"] == "delivery_recorded"]
    assert len(deliveries) == 2
    assert all(line["profile_id"] == "p1" and line["send_key"] for line in deliveries)
    for seeded in ("p1@example.com", "13800138000", "wx-p1"):
        assert seeded not in err


LOOPED = """
id: remind-loop
name: Remind daily until paid
entry: {api: true}
goal: {event: order_paid, within: 400d}
steps:
  - {id: rest, wait: 1d}
  - {id: remind, send: {channel: sms, template: nudge, next: rest}}
"""


@pytest.mark.timeout(300)
def test_a_year_of_a_daily_loop_is_rehearsed_to_its_end(store_path: Path, tmp_path: Path) -> None:
    """The run continues as new on the way (its history would pass 2,000 events); the
    rehearsal follows it to the horizon."""
    (tmp_path / "draft" / "templates").mkdir(parents=True)
    (tmp_path / "draft" / "loop.yaml").write_text(LOOPED, encoding="utf-8")
    (tmp_path / "draft" / "templates" / "nudge.yaml").write_text(
        'text: "还在考虑吗？回T退订"\n', encoding="utf-8"
    )

    path = str(tmp_path / "draft" / "loop.yaml")
    code, out, err = simulate(path, "--profile", "p1", "--days", "366", "--json")

    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "active"
    steps = [(e["kind"], e["step"]) for e in run["timeline"]]
    assert steps[0] == ("entered", None) and steps[-1] == ("waiting", "rest")
    # Every day's wait, to the horizon, and the last sends too (the cap holds some back).
    times = [datetime.fromisoformat(e["at"]) for e in run["timeline"]]
    assert times == sorted(times)
    horizon = times[-1]
    last_send = max(t for t, (kind, _) in zip(times, steps, strict=True) if kind == "send")
    last_wait = max(t for t, s in zip(times, steps, strict=True) if s == ("step", "rest"))
    assert horizon - last_send < timedelta(days=8)  # a send the weekly cap held, at most
    assert horizon - last_wait < timedelta(days=8)


@pytest.mark.timeout(120)
def test_a_rehearsal_reads_a_postgresql_store_and_writes_nothing_to_it(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = f"jsim_{uuid.uuid4().hex[:10]}"

    async def prepare() -> None:
        store = Store.from_url(postgres_url, schema=schema)
        await store.migrate()
        await seed_store(store, daytime_zone())
        await store.aclose()

    async def rows() -> dict[str, int]:
        store = Store.from_url(postgres_url)
        async with store.engine.connect() as conn:
            tables = (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                    ),
                    {"s": schema},
                )
            ).scalars()
            counted = {
                t: (await conn.execute(text(f'SELECT count(*) FROM "{schema}"."{t}"'))).scalar_one()
                for t in sorted(tables)
            }
        await store.aclose()
        return counted

    async def drop() -> None:
        store = Store.from_url(postgres_url)
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await store.aclose()

    asyncio.run(prepare())
    try:
        # The store as a worker would reach it: the schema on the connection's search path.
        url = f"{postgres_url}?options=-csearch_path%3D{schema}"
        monkeypatch.setenv("JOURNEY_DATABASE_URL", url)
        monkeypatch.setenv("JOURNEY_HOME", str(tmp_path))
        monkeypatch.setenv("JOURNEY_JOURNEYS_DIR", str(REPO / "journeys"))
        monkeypatch.delenv("JOURNEY_POLICY_PATH", raising=False)
        before = asyncio.run(rows())

        code, out, err = simulate(
            "cart-recovery",
            "--profile",
            "p1",
            "--days",
            "14",
            "--event",
            "order_paid@+1d",
            "--json",
        )

        assert code == 0, err
        run = json.loads(out)
        assert (run["entered"], run["status"], run["messages_recorded"]) == (
            "started",
            "converted",
            1,
        )
        assert asyncio.run(rows()) == before and before["profiles"] == 13
    finally:
        asyncio.run(drop())
