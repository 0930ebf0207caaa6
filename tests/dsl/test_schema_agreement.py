"""The committed JSON Schemas agree with `journey validate` on every file a marketer edits.

Each example file and a set of wrong ones (typos in keys, wrong enum values, wrong types,
missing keys, broken cross-key rules) is judged twice: by `journey validate` and by an
independent validator, check-jsonschema, reading the committed ``schemas/*.schema.json``. The
verdicts must be equal, except for the cases marked ``BEYOND``: rules JSON Schema cannot express
(`engine.dsl.schema.BEYOND_SCHEMA`), where validate refuses and the schema lets the file pass.
Those are listed here one by one, never silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from engine.dsl.schema import BEYOND_SCHEMA, KINDS

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = ROOT / "journeys"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")

VALID, INVALID, BEYOND = "valid", "invalid", "beyond the schema"

JOURNEY = """\
id: j
name: J
entry: {event: registered}
steps:
  - id: a
    wait: 1h
  - id: b
    send: {channel: sms, template: t}
  - id: c
    exit: {}
"""


def journey(**replace: str) -> str:
    """`JOURNEY` with lines replaced: ``journey(entry="entry: {api: true}")``."""
    lines = JOURNEY.splitlines()
    for key, line in replace.items():
        index = next(i for i, text in enumerate(lines) if text.lstrip(" -").startswith(key))
        lines[index] = line
    return "\n".join(lines) + "\n"


def step(body: str) -> str:
    """`JOURNEY` with its first step's kind replaced by ``body``."""
    return journey(wait=f"    {body}")


def send(extra: str, channel: str = "sms") -> str:
    """`JOURNEY` with ``extra`` keys in its send step."""
    return journey(send=f"    send: {{channel: {channel}, template: t, {extra}}}")


def webhook(target: str, channel: str = "webhook") -> str:
    return send(f"webhook: {target}", channel)


def schedule(cron: str) -> str:
    return journey(entry=f"entry: {{segment: s, schedule: '{cron}'}}")


def branch(*cases: str) -> str:
    return step(f"branch: [{', '.join(cases)}]")


def when(condition: str) -> str:
    """A journey whose branch has one case with ``condition``."""
    return branch(f"{{when: {condition}, goto: c}}")


def split(*weights: object) -> str:
    targets = ("b", "c") * len(weights)  # every step stays reachable
    arms = [f"{{variant: v{i}, weight: {w}, goto: {targets[i]}}}" for i, w in enumerate(weights)]
    return step(f"split: [{', '.join(arms)}]")


def segment(condition: str) -> str:
    return f"id: s\nname: S\ncondition: {condition}\n"


def tiers(*items: str) -> str:
    return f"tiers: [{', '.join(items)}]\n"


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    text: str
    verdict: str
    beyond: int | None = None  # index in BEYOND_SCHEMA, for BEYOND cases
    says: str = ""  # for BEYOND cases: what validate says (so it refuses for that reason)


J, S, P, T, M = "journey", "segment", "policy", "tiers", "template"
VIP = "{when: {tag: vip}, goto: c}"
TIER_A = "{id: a, when: {tag: x}}"

WRONG: tuple[Case, ...] = (
    # journeys
    Case(J, "base", JOURNEY, VALID),
    Case(J, "key typo", JOURNEY.replace("name:", "nmae:"), INVALID),
    Case(J, "missing steps", JOURNEY.split("steps:")[0], INVALID),
    Case(J, "step kind typo", step("wiat: 1h"), INVALID),
    Case(J, "two step kinds", step("wait: 1h\n    exit: {}"), INVALID),
    Case(J, "step without kind", step("next: c"), INVALID),
    Case(J, "bad duration", step("wait: 1x"), INVALID),
    Case(J, "zero duration", step("wait: 0d"), INVALID),
    Case(J, "duration as number", step("wait: 3600"), INVALID),
    Case(J, "compound duration", step("wait: 1h30m"), VALID),
    Case(J, "wait until", step('wait: {until: "10:00"}'), VALID),
    Case(J, "wait until 25h", step('wait: {until: "25:00"}'), INVALID),
    Case(J, "exit null", journey(exit="    exit:"), VALID),
    Case(J, "priority text", JOURNEY + "priority: high\n", INVALID),
    Case(J, "priority number as text", JOURNEY + 'priority: "60"\n', INVALID),
    Case(J, "priority true", JOURNEY + "priority: true\n", INVALID),
    Case(J, "priority 101", JOURNEY + "priority: 101\n", INVALID),
    Case(J, "reentry enum", JOURNEY + "reentry: {policy: sometimes}\n", INVALID),
    Case(J, "after, cooldown", JOURNEY + "reentry: {policy: after, cooldown: 7d}\n", VALID),
    Case(J, "after without cooldown", JOURNEY + "reentry: {policy: after}\n", INVALID),
    Case(J, "cooldown without after", JOURNEY + "reentry: {cooldown: 7d}\n", INVALID),
    Case(J, "api entry", journey(entry="entry: {api: true}"), VALID),
    Case(J, "api 1", journey(entry="entry: {api: 1}"), INVALID),
    Case(J, "two entries", journey(entry="entry: {segment: s, event: x}"), INVALID),
    Case(J, "cron", schedule("0 10 * * *"), VALID),
    Case(J, "cron shorthand", schedule("@daily"), VALID),
    Case(J, "cron 6 fields", schedule("0 0 10 * * *"), INVALID),
    Case(J, "cron out of range", schedule("99 * * * *"), BEYOND, 2, "minute must be 0-59"),
    Case(J, "tag not a slug", JOURNEY + "tags: [Promo!]\n", INVALID),
    Case(J, "goal", JOURNEY + "goal: {event: order_paid, within: 7d}\n", VALID),
    Case(J, "goal without window", JOURNEY + "goal: {event: order_paid}\n", INVALID),
    Case(J, "cap max 0", JOURNEY + "caps: [{max: 0, per: 7d}]\n", INVALID),
    Case(J, "category enum", send("category: promo"), INVALID),
    Case(J, "webhook", webhook("{url: 'https://a.io/h', secret_env: CRM_SECRET}"), VALID),
    Case(J, "webhook on sms", webhook("{url: 'https://a.io/h'}", "sms"), INVALID),
    Case(J, "webhook url relative", webhook("{url: 'a.io/h'}"), INVALID),
    Case(J, "webhook secret lower", webhook("{url: 'https://a.io', secret_env: crm}"), INVALID),
    Case(J, "update", step("update: {attributes: {vip: true, n: 3}, add_tags: [x]}"), VALID),
    Case(J, "update bad attribute", step("update: {attributes: {'bad name': 1}}"), INVALID),
    Case(J, "split", split(50, 50), VALID),
    Case(J, "split one arm", split(100), INVALID),
    Case(J, "split weight text", split("'50'", 50), INVALID),
    Case(J, "split weights 90", split(45, 45), BEYOND, 0, "add up to 90"),
    Case(J, "unknown goto", send("next: nowhere"), BEYOND, 0, "unknown step 'nowhere'"),
    Case(J, "else", branch(VIP, "{else: b}"), VALID),
    Case(J, "else_ (python name)", branch(VIP, "{else_: b}"), INVALID),
    Case(J, "else first", branch("{else: b}", VIP), BEYOND, 1, "'else' must be the last"),
    Case(J, "when without goto", branch("{when: {tag: vip}}"), INVALID),
    # conditions, inside a journey's branch
    Case(J, "short lifecycle", when("{lifecycle: dormant}"), VALID),
    Case(J, "lifecycle list", when("{lifecycle: [new, active]}"), VALID),
    Case(J, "lifecycle enum", when("{lifecycle: sleepy}"), INVALID),
    Case(J, "lifecycle empty", when("{lifecycle: []}"), INVALID),
    Case(J, "short tier", when("{tier: gold}"), VALID),
    Case(J, "tier not a slug", when("{tier: Gold}"), INVALID),
    Case(J, "two operators", when("{attribute: x, gte: 1, lte: 5}"), INVALID),
    Case(J, "no operator", when("{attribute: x}"), INVALID),
    Case(J, "operator null + one", when("{attribute: x, eq: null, gt: 1}"), VALID),
    Case(J, "in list", when("{attribute: city, in: [sh, bj]}"), VALID),
    Case(J, "in_ (python name)", when("{attribute: city, in_: [sh, bj]}"), INVALID),
    Case(J, "in empty", when("{attribute: city, in: []}"), INVALID),
    Case(J, "between one", when("{attribute: x, between: [1]}"), INVALID),
    Case(J, "exists yes", when("{attribute: x, exists: yes}"), INVALID),
    Case(J, "gt true", when("{attribute: x, gt: true}"), INVALID),
    Case(J, "huge number", when("{attribute: x, eq: 1.0e+300}"), INVALID),
    Case(J, "event sum", when("{event: o, within: 90d, sum: amount, gte: 500}"), VALID),
    Case(J, "event count", when("{event: o, within: 7d, count: {gte: 3}}"), VALID),
    Case(J, "event gte without sum", when("{event: o, gte: 5}"), INVALID),
    Case(J, "event sum and count", when("{event: o, sum: a, gte: 1, count: {gte: 1}}"), INVALID),
    Case(J, "event sum no comparison", when("{event: o, sum: a}"), INVALID),
    Case(J, "count two operators", when("{event: o, count: {gte: 1, lt: 3}}"), INVALID),
    Case(J, "window too long", when("{event: o, within: 4000d}"), BEYOND, 4, "at most 3660d"),
    Case(J, "rfm", when("{rfm: recency, between: [60, 120]}"), VALID),
    Case(J, "rfm enum", when("{rfm: recent, gte: 1}"), INVALID),
    Case(J, "rfm recency 1.5", when("{rfm: recency, gte: 1.5}"), INVALID),
    Case(J, "rfm monetary 1.5", when("{rfm: monetary, gte: 1.5}"), VALID),
    Case(
        J,
        "rfm recency 60.0",
        when("{rfm: recency, gte: 60.0}"),
        BEYOND,
        6,
        "recency is a whole number",
    ),
    Case(J, "rfm text number", when("{rfm: frequency, gte: '3'}"), INVALID),
    Case(J, "not", when("{not: {tag: vip}}"), VALID),
    Case(J, "not_ (python name)", when("{not_: {tag: vip}}"), INVALID),
    Case(
        J, "all nested", when("{all: [{tag: a}, {any: [{tier: gold}, {lifecycle: new}]}]}"), VALID
    ),
    Case(J, "all empty", when("{all: []}"), INVALID),
    Case(J, "condition kind typo", when("{atribute: x, eq: 1}"), INVALID),
    Case(J, "two condition kinds", when("{tag: vip, tier: gold}"), INVALID),
    # segments
    Case(S, "base", segment("{tag: vip}"), VALID),
    Case(S, "key typo", segment("{tag: vip}").replace("name:", "title:"), INVALID),
    Case(S, "missing condition", "id: s\nname: S\n", INVALID),
    Case(S, "empty condition", segment("{}"), INVALID),
    Case(S, "id not a slug", segment("{tag: vip}").replace("id: s", "id: S S"), INVALID),
    Case(S, "description number", segment("{tag: vip}") + "description: 5\n", INVALID),
    Case(S, "short tier", segment("{tier: gold}"), VALID),
    Case(S, "short lifecycle", segment("{lifecycle: dormant}"), VALID),
    # the contact policy
    Case(P, "empty mapping", "{}\n", VALID),
    Case(P, "key typo", "timezon: UTC\n", INVALID),
    Case(P, "window enum", "window: daily\n", INVALID),
    Case(P, "quiet hours", "quiet_hours: {from: '21:00', to: '09:00', action: drop}\n", VALID),
    Case(P, "quiet hours bad time", "quiet_hours: {from: '9pm', to: '09:00'}\n", INVALID),
    Case(
        P, "quiet hours action", "quiet_hours: {from: '21:00', to: '09:00', action: x}\n", INVALID
    ),
    Case(P, "cap per bad", "caps: {global: [{max: 1, per: 1x}]}\n", INVALID),
    Case(P, "cap max 0", "caps: {global: [{max: 0, per: 1d}]}\n", INVALID),
    Case(P, "cap max text", "caps: {global: [{max: '1', per: 1d}]}\n", INVALID),
    Case(P, "channel not a slug", "caps: {channels: {'SMS!': [{max: 1, per: 1d}]}}\n", INVALID),
    Case(P, "global_ (python name)", "caps: {global_: [{max: 1, per: 1d}]}\n", INVALID),
    Case(P, "on_capped action", "on_capped: {action: wait}\n", INVALID),
    Case(P, "arbitration", "arbitration: {window: 10m}\n", VALID),
    Case(P, "unknown timezone", "timezone: Mars/Olympus\n", BEYOND, 3, "unknown timezone"),
    Case(
        P,
        "cap window 91d",
        "caps: {global: [{max: 1, per: 91d}]}\n",
        BEYOND,
        4,
        "between 1m and 90d",
    ),
    # member tiers
    Case(T, "empty mapping", "{}\n", VALID),
    Case(T, "key typo", "lifecycle: {new_witin: 30d}\n", INVALID),
    Case(T, "bad duration", "rfm: {window: 1y}\n", INVALID),
    Case(T, "purchase event name", "purchase: {event: 'order paid'}\n", INVALID),
    Case(T, "tier without when", tiers("{id: gold}"), INVALID),
    Case(T, "tier bad condition", tiers("{id: gold, when: {lifecycle: vip}}"), INVALID),
    Case(T, "tier short lifecycle", tiers("{id: gold, when: {lifecycle: active}}"), VALID),
    Case(T, "duplicate ids", tiers(TIER_A, TIER_A), BEYOND, 5, "defined twice"),
    Case(
        T,
        "tier inside a tier",
        tiers("{id: a, when: {tier: b}}"),
        BEYOND,
        5,
        "cannot depend on tiers",
    ),
    Case(
        T,
        "active after dormant",
        "lifecycle: {active_within: 200d}\n",
        BEYOND,
        4,
        "active_within must not",
    ),
    # message templates
    Case(M, "text", "text: hello {{ profile.first_name }}\n", VALID),
    Case(M, "nested and locales", "text: hi\nparams: {n: x}\nlocales: {en: {text: hi}}\n", VALID),
    Case(M, "empty nested", "text: hi\nparams: {}\n", VALID),
    Case(M, "empty file", "", INVALID),
    Case(M, "a list", "- hello\n", INVALID),
    Case(M, "number field", "text: 5\n", INVALID),
    Case(M, "null field", "text:\n", INVALID),
    Case(M, "only locales", "locales: {en: {text: hi}}\n", INVALID),
    Case(M, "only empty nested", "params: {}\n", INVALID),
    Case(M, "locale not a mapping", "text: hi\nlocales: {en: hello}\n", INVALID),
    Case(M, "locales a list", "text: hi\nlocales: [en]\n", INVALID),
    Case(M, "locale with @", "text: hi\nlocales: {'en@x': {text: hi}}\n", INVALID),
    Case(M, "jinja syntax", "text: '{{ oops'\n", BEYOND, 7, "unexpected end of template"),
    Case(M, "unknown name", "text: '{{ person.name }}'\n", BEYOND, 7, "'person' is undefined"),
)


def _path(tmp: Path, kind: str, stem: str) -> Path:
    """Where a file of ``kind`` lives, so that validate recognises it as that kind."""
    folder = {"segment": "segments", "template": "templates"}.get(kind, "")
    name = kind if kind in ("policy", "tiers") else stem
    path = tmp / stem / folder / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _examples() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for path in sorted(JOURNEYS.glob("*.yaml")):
        found[path.stem if path.stem in ("policy", "tiers") else "journey"].append(path)
    found["segment"] = sorted((JOURNEYS / "segments").glob("*.yaml"))
    found["template"] = sorted((JOURNEYS / "templates").glob("*.yaml"))
    return found


def _validate(path: Path) -> tuple[bool, str]:
    """`journey validate`'s verdict on one file, and what it printed."""
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code == 0, result.output


def _schema_accepts(kind: str, paths: list[Path]) -> dict[Path, bool]:
    """check-jsonschema's verdict per file, against the committed schema of ``kind``."""
    schema = ROOT / "schemas" / f"{kind}.schema.json"
    run = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(schema), "-o", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(run.stdout)
    assert not report.get("parse_errors"), report["parse_errors"]
    refused = {Path(error["filename"]) for error in report["errors"]}
    return {path: path not in refused for path in paths}


@pytest.fixture(scope="module")
def checker() -> None:
    if not CHECK_JSONSCHEMA.exists() and shutil.which("check-jsonschema") is None:
        pytest.fail("check-jsonschema is not installed: pip install -e '.[test]'")


@pytest.mark.usefixtures("checker")
@pytest.mark.parametrize("kind", KINDS)
def test_every_example_file_passes_both(kind: str) -> None:
    examples = _examples()[kind]
    assert examples
    by_schema = _schema_accepts(kind, examples)
    for path in examples:
        assert _validate(path)[0], path
        assert by_schema[path], f"{path}: refused by the {kind} schema"


@pytest.mark.usefixtures("checker")
@pytest.mark.parametrize("kind", KINDS)
def test_validate_and_the_schema_agree_on_wrong_files(kind: str, tmp_path: Path) -> None:
    cases = [case for case in WRONG if case.kind == kind]
    paths = []
    for index, case in enumerate(cases):
        path = _path(tmp_path, kind, f"case{index}")
        path.write_text(case.text, encoding="utf-8")
        paths.append(path)
    by_schema = _schema_accepts(kind, paths)
    wrong = []
    for case, path in zip(cases, paths, strict=True):
        accepted, output = _validate(path)
        got = (accepted, by_schema[path])
        expected = {VALID: (True, True), INVALID: (False, False), BEYOND: (False, True)}
        if got != expected[case.verdict]:
            wrong.append(f"{case.name}: expected {case.verdict}, (validate, schema) = {got}")
        elif case.verdict == BEYOND and case.says not in output:
            wrong.append(f"{case.name}: validate refused for another reason: {output}")
    assert not wrong, "\n".join(wrong)


def test_every_exception_is_documented_and_used() -> None:
    beyond = [case for case in WRONG if case.verdict == BEYOND]
    assert all(case.says for case in beyond)
    used = {case.beyond for case in beyond}
    assert None not in used
    assert used == set(range(len(BEYOND_SCHEMA)))
