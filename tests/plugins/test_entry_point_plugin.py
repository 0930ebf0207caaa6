"""A connector from a separate distribution, registered only by its entry point, sends a journey."""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from connectors.limits import LimitedConnector
from connectors.registry import ENTRY_POINT_GROUP, ConnectorRegistry, ConnectorSettings
from tests.harness import person, running_worker, sqlite_store

PACKAGE = Path(__file__).parent / "journey_pigeon"


def install(package: Path, site: Path) -> None:
    """Install ``package`` the way an installer lays it out: its module on a sys.path entry and
    a dist-info whose entry_points.txt comes from the package's own pyproject.toml."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    groups = project["entry-points"]
    lines = [
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
        for group, entries in groups.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(lines))
    for module in package.glob("*.py"):
        (site / module.name).write_text(module.read_text())


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    install(PACKAGE, site)
    monkeypatch.syspath_prepend(str(site))
    loft = tmp_path / "loft"
    monkeypatch.setenv("JOURNEY_PIGEON_LOFT", str(loft))
    return loft


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_the_plugin_is_discovered_and_sends_a_journey(
    installed: Path, http: httpx.AsyncClient, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    loft = installed
    settings = ConnectorSettings(channels={"sms": "pigeon_post", "email": "console"})
    registry = ConnectorRegistry.from_settings(settings, http)
    assert registry.check() == []
    rows = {name: (ok, detail) for name, ok, detail in registry.installed()}
    assert rows["pigeon_post"] == (True, "channels: sms; delivery at_most_once")
    assert isinstance(registry.for_channel("sms"), LimitedConnector)  # its declared limits

    store = await sqlite_store(tmp_path)
    spec = {
        "id": f"j-{uuid.uuid4().hex[:8]}",
        "name": "pigeon",
        "entry": {"api": True},
        "steps": [{"id": "coo", "send": {"channel": "sms", "template": "coo"}}],
    }
    async with running_worker(time_skipping_env, store, tmp_path, connectors=registry) as h:
        now = await time_skipping_env.get_current_time()
        version = await h.deploy(spec, {"coo": {"text": "{{ profile.first_name }}，咕咕"}}, now)
        await store.upsert_profiles([person("p1", phone="+8613800000001")])
        await h.enroller.enroll(version, ["p1"], now)
        result = await h.result(spec["id"], "p1")

    assert result.status == "completed"
    (letter,) = [json.loads(p.read_text()) for p in loft.glob("*.json")]
    assert letter["content"] == {"text": "小明，咕咕"}
    (delivery,) = await store.deliveries(journey_id=spec["id"])
    assert delivery.status == "sent"
    assert delivery.provider_message_id is not None
    assert delivery.provider_message_id.startswith("pigeon-")
    await registry.aclose()
    await store.aclose()


async def test_a_plugin_without_its_setting_is_reported_by_name(
    installed: Path, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNEY_PIGEON_LOFT")
    settings = ConnectorSettings(channels={"sms": "pigeon_post"})
    (problem,) = ConnectorRegistry.from_settings(settings, http).check()
    assert "'sms'" in problem and "JOURNEY_PIGEON_LOFT is not set" in problem
    assert ENTRY_POINT_GROUP == "journey_engine.connectors"
