"""Templates: per-channel fields, locale variants, defaults, injection, errors found at deploy."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.domain import Profile
from engine.dsl.models import Journey
from engine.services.deploy import deploy_journey
from engine.templates import (
    TemplateError,
    load_templates,
    locale_chain,
    render,
    render_message,
)
from tests.harness import sqlite_store

EXTRA = {"journey": {"id": "cart"}, "step": {"id": "nudge"}}


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def profile(locale: str = "zh-CN", **attributes: object) -> Profile:
    return Profile(id="p1", attributes=dict(attributes), locale=locale)


def test_fields_nest_into_dotted_names_and_locales_inherit_the_default(tmp_path: Path) -> None:
    write(
        tmp_path,
        "coupon",
        """
        text: "{{ profile.first_name | default('朋友') }}，券已到账"
        template_code: SMS_1
        params:
          name: "{{ profile.first_name | default('朋友') }}"
        locales:
          en:
            text: "{{ profile.first_name | default('friend') }}, your coupon is here"
            params: {name: "{{ profile.first_name | default('friend') }}"}
          zh-TW:
            text: "{{ profile.first_name | default('朋友') }}，優惠券已到帳"
        """,
    )
    templates = load_templates(tmp_path, {"coupon"}, {"coupon": {"sms"}})
    assert set(templates) == {"coupon", "coupon@en", "coupon@zh-TW"}
    assert templates["coupon@en"]["template_code"] == "SMS_1"  # inherited
    assert set(templates["coupon"]) == {"text", "template_code", "params.name"}

    chinese = render_message(templates, "coupon", profile("zh-CN"), EXTRA)
    assert chinese == {"text": "朋友，券已到账", "template_code": "SMS_1", "params.name": "朋友"}
    english = render_message(templates, "coupon", profile("en_US", first_name="Ann"), EXTRA)
    assert english["text"] == "Ann, your coupon is here"
    assert english["params.name"] == "Ann"
    taiwan = render_message(templates, "coupon", profile("zh-TW"), EXTRA)
    assert taiwan["text"] == "朋友，優惠券已到帳"
    french = render_message(templates, "coupon", profile("fr-FR"), EXTRA)
    assert french["text"] == "朋友，券已到账"  # no French: the default
    with pytest.raises(TemplateError, match="'missing' is not part"):
        render_message(templates, "missing", profile(), EXTRA)


def test_locale_chain_falls_back_from_region_to_language() -> None:
    assert locale_chain("zh_hant_tw") == ["zh-Hant-TW", "zh-Hant", "zh"]
    assert locale_chain("EN") == ["en"]
    assert locale_chain(None) == []


def test_every_problem_is_found_at_load_with_file_line_template_and_field(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "broken",
        """
        # a comment, line 1
        subject: "{{ first_name }}"
        text: "{{ journey.name }} {{ step.id }}"
        html: |
          <p>line one</p>
          <p>{{ profile.first_name | shout }}</p>
        locales:
          en:
            subject: "{% if profile.vip %}VIP"
        """,
    )
    with pytest.raises(TemplateError) as info:
        load_templates(tmp_path, {"broken"})
    lines = str(info.value).splitlines()
    assert f"{path}:2: template 'broken' field 'subject': 'first_name' is undefined" in lines[0]
    assert any(
        f"{path}:3: template 'broken' field 'text': 'journey' has no field 'name'" in x
        for x in lines
    )
    assert any(f"{path}:6: template 'broken' field 'html':" in x and "shout" in x for x in lines)
    assert any(f"{path}:9: template 'broken@en' field 'subject':" in x for x in lines)


def test_missing_channel_fields_are_found_for_the_channels_a_journey_uses(
    tmp_path: Path,
) -> None:
    write(tmp_path, "note", 'text: "hi"\n')
    assert load_templates(tmp_path, {"note"}, {"note": {"sms", "wecom"}})
    with pytest.raises(TemplateError) as info:
        load_templates(tmp_path, {"note"}, {"note": {"email", "push"}})
    message = str(info.value)
    assert "email needs field(s) subject" in message
    assert "push needs field(s) body" in message


async def test_deploy_refuses_a_broken_template_and_stores_nothing(tmp_path: Path) -> None:
    write(tmp_path / "templates", "hello", 'text: "{{ profil.first_name }}，你好"\n')
    journey = Journey.model_validate(
        {
            "id": "j1",
            "name": "j",
            "entry": {"api": True},
            "steps": [{"id": "hi", "send": {"channel": "sms", "template": "hello"}}],
        }
    )
    store = await sqlite_store(tmp_path)
    with pytest.raises(TemplateError) as info:
        await deploy_journey(store, journey, tmp_path / "templates", datetime.now(UTC))
    assert "hello.yaml:1: template 'hello' field 'text': 'profil' is undefined" in str(info.value)
    assert await store.latest_versions() == []
    await store.aclose()


# --- injection --------------------------------------------------------------------------------

PAYLOADS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ profile.first_name.__class__ }}",
    "{{ profile['__class__'] }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ range(10) | list }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_in_templates_are_refused_at_deploy(tmp_path: Path, payload: str) -> None:
    write(tmp_path, "evil", f"text: {payload!r}\n".replace("'{{", '"{{').replace("}}'", '}}"'))
    with pytest.raises(TemplateError, match="evil"):
        load_templates(tmp_path, {"evil"})


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_stored_without_deploy_are_refused_by_the_sandbox(payload: str) -> None:
    with pytest.raises(TemplateError):
        render({"text": payload}, profile(first_name="小明"), EXTRA)


def test_resource_exhaustion_is_refused() -> None:
    with pytest.raises(TemplateError, match="too large"):
        render({"text": "{{ 'a' * 1000000000 }}"}, profile(), EXTRA)
    with pytest.raises(TemplateError, match="too large"):
        render({"text": "{{ 9 ** 999999999 }}"}, profile(), EXTRA)


def test_profile_values_are_data_never_templates_and_html_is_escaped() -> None:
    evil = "{{ ''.__class__.__mro__ }}<script>alert(1)</script>"
    content = render(
        {
            "text": "{{ profile.first_name }}",
            "html": "<p>{{ profile.first_name }}</p>",
        },
        profile(first_name=evil),
        EXTRA,
    )
    assert content["text"] == evil  # printed as given, never evaluated
    assert content["html"] == (
        "<p>{{ &#39;&#39;.__class__.__mro__ }}&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    )


def test_defaults_fill_a_missing_attribute_and_strict_undefined_catches_the_rest() -> None:
    fields = {"text": "{{ profile.first_name | default('朋友') }}，你好"}
    assert render(fields, profile(), EXTRA) == {"text": "朋友，你好"}
    with pytest.raises(TemplateError, match="field 'text'"):
        render({"text": "{{ profile.cart_value }}元"}, profile(), EXTRA)


def test_every_example_journeys_templates_pass_the_deploy_checks(repo_root: Path) -> None:
    from engine.dsl.loader import load_journey
    from engine.services.deploy import channels_by_template, journey_files

    journeys, _ = journey_files(sorted((repo_root / "journeys").glob("*.yaml")))
    assert len(journeys) >= 3
    for path in journeys:
        journey = load_journey(path)
        templates = load_templates(
            repo_root / "journeys" / "templates",
            journey.templates(),
            channels_by_template(journey),
        )
        assert journey.templates() <= set(templates)
