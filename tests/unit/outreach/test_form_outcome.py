"""What the form engine concludes from a site's answer, and the wizard and honeypot rules (no browser)."""
from __future__ import annotations

from funnel.outreach.forms import detect
from funnel.outreach.forms.fields import HONEYPOT, FieldInfo, classify_form


def field(fid: str, **attrs) -> FieldInfo:
    attrs.setdefault("tag", "input")
    attrs.setdefault("type", "text")
    return FieldInfo(fid=fid, **attrs)


def test_new_aria_invalid_fields_and_error_summaries_are_a_rejection():
    before = {"alerts": [], "invalid": []}
    after = {"alerts": ["送信前にご確認いただきたい点があります。"],
             "invalid": [{"name": "email", "message": "このドメインのアドレスはご利用いただけません"}]}
    outcome = detect.classify_marks(before, after)
    assert outcome is not None and outcome.kind == detect.ERROR
    assert "ご利用いただけません" in outcome.message and "ご確認いただきたい点" in outcome.message


def test_marks_already_on_the_page_and_thanking_alerts_are_not_a_rejection():
    before = {"alerts": ["* は必須項目です"], "invalid": [{"name": "tel", "message": ""}]}
    after = {"alerts": ["* は必須項目です", "ありがとうございます。メッセージは送信されました。"],
             "invalid": [{"name": "tel", "message": ""}]}
    assert detect.classify_marks(before, after) is None


def test_a_refused_request_reports_the_sites_own_words():
    json_refusal = detect.rejection(422, {"message": "送信を受け付けられませんでした"}, "")
    assert json_refusal.kind == detect.ERROR and json_refusal.message == "HTTP 422: 送信を受け付けられませんでした"
    page = "<html><head><title>混雑中</title><style>p{}</style></head><body><p>しばらくお待ちください</p></body></html>"
    assert detect.rejection(503, None, page).message == "HTTP 503: 混雑中 しばらくお待ちください"
    assert detect.rejection(500, None, "").message == "HTTP 500"


def test_consent_required_answers_are_errors_and_never_success():
    page = "http://a.example/contact/"
    answer = "お問い合わせ\n個人情報の取り扱いへの同意が必要です。"
    outcome = detect.classify_page("お問い合わせ", page, answer, page, True)
    assert outcome.kind == detect.ERROR
    silent = detect.classify_page("お問い合わせ", "http://a.example/contact/", "会社概要", "http://a.example/contact/",
                                  False)
    assert silent.kind == detect.UNKNOWN_OUTCOME  # no evidence of acceptance: the engine reports failed


def test_a_wizards_first_step_counts_as_a_contact_form_only_with_a_next_button():
    infos = [field("f1", name="name", labels="Full name", visible=True),
             field("f2", name="email", type="email", labels="Work email", visible=True)]
    controls = classify_form(infos)
    step = {"attrs": "", "buttons": [{"text": "Next", "visible": True, "type": "submit"}]}
    newsletter = {"attrs": "newsletter", "buttons": [{"text": "Next", "visible": True, "type": "submit"}]}
    plain = {"attrs": "", "buttons": [{"text": "Subscribe", "visible": True, "type": "submit"}]}
    assert detect.score_form(step, controls) is not None
    assert detect.score_form(newsletter, controls) is None
    assert detect.score_form(plain, controls) is None


def test_hidden_controls_of_a_later_step_are_not_honeypots_but_a_lone_hidden_field_is():
    later = classify_form([field("f1", name="message", tag="textarea", labels="お問い合わせ内容", visible=False,
                                 container_visible=False, later_step=True)])
    trap = classify_form([field("f2", name="website", labels="Website", visible=False, container_visible=False)])
    labelled_trap = classify_form([field("f3", name="extra", labels="空欄のままにしてください", visible=False,
                                         later_step=True)])
    assert later[0].semantic == "message"
    assert trap[0].semantic == HONEYPOT
    assert labelled_trap[0].semantic == HONEYPOT


def test_previous_step_buttons_are_never_pressed():
    assert detect.button_kind({"text": "前へ", "type": "button"}) is None
    assert detect.button_kind({"text": "Previous", "type": "submit"}) is None
    assert detect.button_kind({"text": "Continue", "type": "button"}) == detect.CONFIRM_BUTTON
