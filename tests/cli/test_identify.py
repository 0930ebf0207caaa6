"""`journey identify` finds, creates and merges people like POST /v1/identify does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from engine.identity import identity
from tests.harness import sqlite_store


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    asyncio.run(_migrate(tmp_path))
    monkeypatch.setenv("JOURNEY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}")
    monkeypatch.setenv("JOURNEY_HOME", str(tmp_path))
    return tmp_path


async def _migrate(directory: Path) -> None:
    await (await sqlite_store(directory)).aclose()


def identify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["identify", *args])
    return result.exit_code, result.output.strip()


def test_identify_creates_finds_and_merges(database: Path) -> None:
    code, app_user = identify("email=Li.Lei@Example.com", "--attr", "first_name=磊", "--tag", "vip")
    assert code == 0 and app_user.endswith("(created)")
    code, shop_user = identify("phone=138 0013 8000", "--profile", "shop-42")
    assert (code, shop_user) == (0, "shop-42 (created)")
    assert identify("email=li.lei@example.com")[1] == app_user.replace("created", "found")

    code, merged = identify("email=li.lei@example.com", "phone=+8613800138000")

    survivor = app_user.split()[0]
    assert (code, merged) == (0, f"{survivor} (found, merged shop-42)")

    async def check() -> None:
        store = await sqlite_store(database)
        profile = await store.get_profile("shop-42")
        assert profile is not None and profile.id == survivor
        assert profile.attributes["first_name"] == "磊" and profile.tags == {"vip"}
        assert await store.find_profile_id(identity("phone", "13800138000")) == survivor
        await store.aclose()

    asyncio.run(check())


def test_bad_identities_are_one_line_and_write_nothing(database: Path) -> None:
    code, output = identify("email=li@example.com", "phone=12345")
    assert code == 1
    assert output.startswith("identity 2 (phone): is not a valid phone number")
    assert "12345" not in output  # never echoes personal data
    assert identify("fax=1")[1].startswith("identity 1 (fax): unknown identity type")
    assert identify("email")[1] == "an identity must look like key=value, got 'email'"

    async def nothing_written() -> None:
        store = await sqlite_store(database)
        assert await store.count_profiles() == 0
        await store.aclose()

    asyncio.run(nothing_written())
