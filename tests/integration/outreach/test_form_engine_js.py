"""The form engine against real Chromium on forms that need a browser that waits and looks like a person:
forms rendered late (a timer, a fetch, a HubSpot-like embed), in a cross-origin iframe, in a shadow root, two- and
three-step wizards, consent boxes below a terms box or outside the form, and sites whose answer is not an
acceptance (200 with a validation error, 4xx/5xx, no evidence). The sites are ``tests/support/contact_sites_js.py``."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install funnel[browser])")

from funnel.outreach.forms.engine import FormEngine  # noqa: E402 - after the skip above
from funnel.outreach.forms.model import SenderProfile, Status  # noqa: E402
from tests.support.contact_sites_js import KINDS, SUBMITTED_KINDS, JsContactSite  # noqa: E402

SENDER = SenderProfile(company="株式会社ファネル", last_name="山田", first_name="太郎", last_name_kana="ヤマダ",
                       first_name_kana="タロウ", email="taro.yamada@funnel.example", phone="03-1234-5678",
                       company_en="Funnel Inc.", last_name_en="Yamada", first_name_en="Taro")
MESSAGE = "突然のご連絡失礼いたします。業務効率化のご提案でご連絡いたしました。"

# The kinds where no submission may be accepted: the status to report, and words of the site's own message.
NOT_SUBMITTED = {
    "consent_locked": (Status.FAILED, "同意が必要です"),
    "validation_200": (Status.FAILED, "ご利用いただけません"),
    "server_error": (Status.FAILED, "HTTP 500"),
    "ajax_4xx": (Status.FAILED, "送信を受け付けられませんでした"),
    "silent_200": (Status.FAILED, "did not confirm"),
    "captcha_late": (Status.CAPTCHA, "CAPTCHA"),
    "refused_late": (Status.REFUSED, "営業"),
    "no_form_late": (Status.NO_FORM, "no contact form"),
}


@pytest.fixture(scope="module")
def engine():
    try:
        with FormEngine(allow_hosts=["127.0.0.1", "127.0.0.2"], timeout=10) as warm_engine:
            yield warm_engine
    except Exception as exc:  # noqa: BLE001 - any launch failure means "no browser here"
        pytest.skip(f"Chromium could not be started: {exc}")


def test_every_kind_has_an_expectation():
    assert set(SUBMITTED_KINDS) | set(NOT_SUBMITTED) == set(KINDS)


@pytest.mark.parametrize("kind", SUBMITTED_KINDS)
def test_form_is_found_filled_and_submitted(engine, kind):
    with JsContactSite(kind) as site:
        result = engine.submit(site.url, SENDER, MESSAGE)
    assert result.status == Status.SUBMITTED, result.message
    assert len(site.posts) == 1 and not site.rejected, (site.posts, site.rejected)
    values = site.posts[0]
    assert values["email"] == SENDER.email
    assert values["message"] == MESSAGE
    assert all(not value for name, value in values.items() if name.startswith("hp_"))  # the wizard's honeypot


@pytest.mark.parametrize("kind", sorted(NOT_SUBMITTED))
def test_never_a_false_submitted(engine, kind):
    status, words = NOT_SUBMITTED[kind]
    with JsContactSite(kind) as site:
        result = engine.submit(site.url, SENDER, MESSAGE)
    assert result.status == status, result.message
    assert words in result.message
    assert not site.posts
    if status != Status.FAILED:  # the safety rules stop before anything is filled in or posted
        assert not site.rejected


def test_wizard_reports_the_fields_of_every_step(engine):
    with JsContactSite("wizard3") as site:
        result = engine.submit(site.url, SENDER, MESSAGE)
    assert result.status == Status.SUBMITTED, result.message
    semantics = {f.name: f.semantic for f in result.fields}
    assert semantics == {"name": "full_name", "email": "email", "company": "company", "phone": "phone",
                         "message": "message", "consent": "consent"}
    assert site.posts[0]["name"] == "Taro Yamada" and site.posts[0]["consent"] == "yes"


def test_review_mode_walks_the_wizard_and_stops_before_the_final_click(engine):
    with JsContactSite("wizard2") as site:
        result = engine.submit(site.url, SENDER, MESSAGE, dry_run=True)
    assert result.status == Status.READY, result.message
    assert not site.posts and not site.rejected
    assert {f.semantic for f in result.fields} >= {"company", "full_name", "email", "phone", "message"}
