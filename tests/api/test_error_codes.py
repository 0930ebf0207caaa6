"""The README's table of API errors, the OpenAPI document and the server's answers agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.timeout(120)

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| (\d{3}) \| (.+) \|$")
JSON_ROUTES = [
    ("post", "/v1/events"),
    ("post", "/v1/profiles"),
    ("post", "/v1/identify"),
    ("put", "/v1/profiles/p1/subscriptions/sms"),
    ("post", "/v1/journeys/j1/trigger"),
]
MALFORMED = [
    (b'{"events": [', "malformed JSON at line 1, column 13 (character 12)"),
    (b'{\n  "a": 1,\n  "b" 2\n}', "malformed JSON at line 3, column 7 (character 18)"),
    # Latin-1, not UTF-8: byte 19 is the é.
    ('{"profile_id": "Ren\u00e9"}'.encode("latin-1"), "the body is not UTF-8: byte 19 (0xe9)"),
    # UTF-16 with its byte-order mark: json.loads(bytes) used to guess it and accept it.
    ('{"events": []}'.encode("utf-16"), "the body is not UTF-8: byte 0 (0xff)"),
]


def documented() -> dict[int, str]:
    """status -> when, from the README's HTTP API table."""
    section = README.read_text(encoding="utf-8").split("### The HTTP API", 1)[1].split("\n### ")[0]
    rows = (ROW.match(line) for line in section.splitlines())
    return {int(m.group(1)): m.group(2) for m in rows if m}


def operations(openapi: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    }


def _path(openapi: dict[str, Any], method: str, concrete: str) -> dict[str, Any]:
    for (m, template), operation in operations(openapi).items():
        pattern = re.sub(r"\{[^/]+\}", "[^/]+", template)
        if m == method and re.fullmatch(pattern, concrete):
            return operation
    raise AssertionError(f"{method.upper()} {concrete} is not in the OpenAPI document")


async def test_readme_and_openapi_list_the_same_error_statuses(api: Api) -> None:
    openapi = (await api.client.get("/openapi.json")).json()
    in_openapi = {
        int(status)
        for operation in operations(openapi).values()
        for status in operation.get("responses", {})
        if int(status) >= 400
    }
    assert set(documented()) == in_openapi


@pytest.mark.parametrize(("body", "message"), MALFORMED)
async def test_a_body_that_is_not_utf8_json_gets_the_documented_status(
    api: Api, body: bytes, message: str
) -> None:
    openapi = (await api.client.get("/openapi.json")).json()
    [status] = [code for code, when in documented().items() if "not JSON" in when]
    for method, path in JSON_ROUTES:
        response = await api.client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == status, (path, response.text)
        assert response.json()["detail"].startswith(message), (path, response.text)
        responses = _path(openapi, method, path)["responses"]
        assert "not JSON" in responses[str(status)]["description"], path
    assert await api.store.events_for("p") == []
