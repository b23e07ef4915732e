"""Field classification, value formatting and page decisions of the form engine (no browser)."""
from __future__ import annotations

import pytest

from funnel.outreach.forms import detect
from funnel.outreach.forms.fields import HONEYPOT, FieldInfo, classify_form
from funnel.outreach.forms.fill import (
    CHECK_MODE,
    SELECT_MODE,
    choose_option,
    choose_prefecture,
    plan_fills,
    split_phone,
    split_zip,
)
from funnel.outreach.forms.model import FormResult, SenderProfile
from funnel.outreach.forms.text import katakana_to_hiragana, name_tokens, to_full_width_katakana

SENDER = SenderProfile(
    company="株式会社サンプル商事", department="営業部", position="部長", last_name="山田", first_name="太郎",
    last_name_kana="ヤマダ", first_name_kana="タロウ", email="taro@example.co.jp", phone="03-1234-5678",
    zip="100-0001", prefecture="東京都", address="千代田区千代田1-1", url="https://example.co.jp",
    subject="ご案内", last_name_en="Yamada", first_name_en="Taro", company_en="Sample Shoji")


def field(fid: str, **attrs) -> FieldInfo:
    attrs.setdefault("tag", "input")
    attrs.setdefault("type", "text")
    return FieldInfo(fid=fid, **attrs)


def semantics(*infos: FieldInfo) -> dict[str, str]:
    return {c.name: c.semantic for c in classify_form(list(infos))}


# --------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------
@pytest.mark.parametrize(("attrs", "expected"), [
    ({"name": "your-name", "labels": "氏名"}, "full_name"),
    ({"name": "kaisha", "row_header": "御社名 必須"}, "company"),
    ({"name": "busho", "row_header": "部署名"}, "department"),
    ({"name": "yakushoku", "labels": "役職"}, "position"),
    ({"name": "mail", "type": "email", "row_header": "E-mail"}, "email"),
    ({"name": "email2", "type": "email", "row_header": "メールアドレス（確認）"}, "email_confirm"),
    ({"name": "homepage", "type": "url", "labels": "貴社ホームページ"}, "url"),
    ({"name": "company_tel", "labels": "会社電話番号"}, "phone"),
    ({"name": "f1", "labels": "郵便番号"}, "zip"),
    ({"name": "addr", "placeholder": "市区町村・番地・建物名", "row_header": "ご住所"}, "address"),
    ({"name": "your-subject", "labels": "題名"}, "subject"),
    ({"name": "q", "labels": "Company name"}, "company"),
    ({"name": "x", "labels": "First name"}, "first_name"),
    ({"name": "x", "labels": "Last name"}, "last_name"),
    ({"name": "x", "placeholder": "例）info@example.com"}, "email"),
    ({"name": "x", "placeholder": "ヤマダ タロウ"}, "full_name_kana"),
    ({"name": "fax", "labels": "FAX番号"}, "fax"),
    ({"name": "f_name", "labels": "ご担当者名"}, "full_name"),
    ({"name": "fname"}, "first_name"),
    ({"name": "building", "labels": "建物名"}, "building"),
])
def test_single_text_fields(attrs, expected):
    assert semantics(field("f1", **attrs))[attrs["name"]] == expected


def test_textarea_message_and_select_inquiry_type():
    result = semantics(
        field("f1", tag="textarea", type="", name="naiyou", row_header="お問い合わせ内容"),
        field("f2", tag="select", type="", name="kind", labels="ご相談内容の種別",
              options=[{"value": "", "text": "選択"}, {"value": "a", "text": "a"}]),
    )
    assert result == {"naiyou": "message", "kind": "inquiry_type"}


def test_prefecture_select_recognised_by_its_options():
    options = [{"value": p, "text": p} for p in ("", "北海道", "東京都", "大阪府", "沖縄県")]
    assert semantics(field("f1", tag="select", type="", name="s1", row_header="ご住所", options=options)) \
        == {"s1": "prefecture"}


def test_split_phone_zip_and_name_in_one_row():
    result = semantics(
        field("f1", name="name1", row_header="お名前", row_key="r1"),
        field("f2", name="name2", row_header="お名前", row_key="r1"),
        field("f3", name="tel[data][0]", row_header="電話番号", row_key="r2"),
        field("f4", name="tel[data][1]", row_header="電話番号", row_key="r2"),
        field("f5", name="tel[data][2]", row_header="電話番号", row_key="r2"),
        field("f6", name="zip1", prefix="〒", row_header="ご住所", row_key="r3"),
        field("f7", name="zip2", row_header="ご住所", row_key="r3"),
    )
    assert result == {"name1": "last_name", "name2": "first_name", "tel[data][0]": "phone1",
                      "tel[data][1]": "phone2", "tel[data][2]": "phone3", "zip1": "zip1", "zip2": "zip2"}


def test_inline_prefix_labels_split_name_and_kana():
    result = semantics(
        field("f1", name="name_sei", prefix="姓", row_header="お名前", row_key="r1"),
        field("f2", name="name_mei", prefix="名", row_header="お名前", row_key="r1"),
        field("f3", name="kana_sei", prefix="セイ", row_header="フリガナ", row_key="r2"),
        field("f4", name="kana_mei", prefix="メイ", row_header="フリガナ", row_key="r2"),
    )
    assert result == {"name_sei": "last_name", "name_mei": "first_name",
                      "kana_sei": "last_name_kana", "kana_mei": "first_name_kana"}


def test_second_email_right_after_the_first_is_the_confirmation():
    result = semantics(field("f1", name="mail", type="email", labels="メール"),
                       field("f2", name="mail_b", type="email", labels="もう一度"))
    assert result == {"mail": "email", "mail_b": "email_confirm"}


@pytest.mark.parametrize("trap", [
    {"visible": False},
    {"aria_hidden": True},
    {"tabindex": "-1"},
    {"labels": "URL（このフィールドには何も入力しないでください）"},
    {"name": "_wpcf7_ak_hp_textarea"},
])
def test_honeypots(trap):
    attrs = {"name": "url", "labels": "URL", **trap}
    assert classify_form([field("f1", **attrs)])[0].semantic == HONEYPOT


def test_styled_checkbox_with_visible_label_is_not_a_honeypot():
    control = classify_form([field("f1", type="checkbox", name="agree", labels="同意する", visible=False,
                                   label_visible=True)])[0]
    assert control.semantic == "consent"


def test_radio_group_is_one_inquiry_type_control():
    controls = classify_form([
        field(f"f{i}", type="radio", name="inquiry", value=v, labels=v, row_header="お問い合わせ種別")
        for i, v in enumerate(("新築のご相談", "リフォームのご相談", "その他"))
    ])
    assert len(controls) == 1 and controls[0].semantic == "inquiry_type" and len(controls[0].members) == 3


@pytest.mark.parametrize(("attrs", "script"), [
    ({"labels": "フリガナ"}, "katakana"),
    ({"labels": "ふりがな"}, "hiragana"),
    ({"labels": "フリガナ", "suffix": "ひらがなで入力してください"}, "hiragana"),
    ({"labels": "よみ", "placeholder": "やまだ たろう"}, "hiragana"),
    ({"labels": "ふりがな", "pattern": "[ァ-ヶー　 ]+"}, "katakana"),
    ({"labels": "カナ", "row_text": "全角カタカナで入力"}, "katakana"),
])
def test_kana_script(attrs, script):
    control = classify_form([field("f1", name="kana", **attrs)])[0]
    assert control.kana_script == script


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------
@pytest.mark.parametrize(("phone", "parts"), [
    ("03-1234-5678", ("03", "1234", "5678")),
    ("0312345678", ("03", "1234", "5678")),
    ("09012345678", ("090", "1234", "5678")),
    ("０４５－１２３－４５６７", ("045", "123", "4567")),
    ("+81 3 1234 5678", ("03", "1234", "5678")),
])
def test_split_phone(phone, parts):
    assert split_phone(phone) == parts


def test_split_zip():
    assert split_zip("〒100-0001") == ("100", "0001")


def test_kana_conversions():
    assert katakana_to_hiragana("ヤマダ タロウ") == "やまだ たろう"
    assert to_full_width_katakana("やまだ") == "ヤマダ"
    assert to_full_width_katakana("ﾀﾛｳ") == "タロウ"
    assert SenderProfile(last_name_kana="やまだ").last_name_kana == "ヤマダ"


def test_name_tokens():
    assert name_tokens("tel[data][0]") == ["tel", "data", "0"]
    assert name_tokens("lastNameKana") == ["last", "name", "kana"]
    assert name_tokens("email2") == ["email", "2"]


def _plan(*infos: FieldInfo, english: bool = False):
    controls = classify_form(list(infos))
    return {p.control.name: p for p in plan_fills(controls, SENDER, "本文", "件名", english=english)}


def test_text_candidates_follow_the_field_hints():
    plan = _plan(
        field("f1", name="tel", type="tel", labels="電話番号", suffix="ハイフンなし"),
        field("f2", name="zip", labels="郵便番号", placeholder="123-4567"),
        field("f3", name="kana", labels="ふりがな", placeholder="やまだ　たろう"),
        field("f4", name="name", labels="お名前", placeholder="山田太郎"),
    )
    assert plan["tel"].actions[0].candidates == ["0312345678", "03-1234-5678"]
    assert plan["zip"].actions[0].candidates == ["100-0001", "1000001"]
    assert plan["kana"].actions[0].candidates[0] == "やまだ\u3000たろう"
    assert plan["name"].actions[0].candidates[0] == "山田太郎"


def test_address_includes_the_prefecture_only_without_a_prefecture_field():
    assert _plan(field("f1", name="address", labels="住所"))["address"].value == "東京都千代田区千代田1-1"
    with_pref = _plan(field("f1", name="pref", labels="都道府県"), field("f2", name="address", labels="住所"))
    assert with_pref["address"].value == "千代田区千代田1-1" and with_pref["pref"].value == "東京都"


def test_english_form_uses_latin_names():
    plan = _plan(field("f1", name="name", labels="Full name"), field("f2", name="company", labels="Company"),
                 english=True)
    assert plan["name"].value == "Taro Yamada" and plan["company"].value == "Sample Shoji"


def test_honeypots_and_unknown_optional_fields_stay_empty():
    plan = _plan(field("f1", name="url", labels="URL", visible=False), field("f2", name="visit", labels="来店日"))
    assert plan == {}


def test_choices():
    options = [{"value": "", "text": "選択してください"}, {"value": "1", "text": "製品について"},
               {"value": "2", "text": "その他"}]
    assert choose_option(options, ())["value"] == "2"
    plan = _plan(field("f1", tag="select", type="", name="type", labels="お問い合わせ種別", options=options),
                 field("f2", type="checkbox", name="agree", value="1", labels="プライバシーポリシーに同意する"))
    assert plan["type"].actions[0].mode == SELECT_MODE and plan["type"].value == "2"
    assert plan["agree"].actions[0].mode == CHECK_MODE


def test_prefecture_option_matching():
    options = [{"value": "", "text": "--"}, {"value": "12", "text": "千葉"}, {"value": "13", "text": "東京"}]
    assert choose_prefecture(options, "東京都")["value"] == "13"
    assert choose_prefecture([{"value": "tokyo", "text": "東京都"}], "東京都")["value"] == "tokyo"


def test_consent_radio_picks_agreement():
    controls = [field(f"f{i}", type="radio", name="consent", value=v, labels=v, row_header="個人情報の取り扱い")
                for i, v in enumerate(("同意しない", "同意する"))]
    plan = {p.control.name: p for p in plan_fills(classify_form(controls), SENDER, "本文", "件名")}
    assert plan["consent"].value == "同意する"


# --------------------------------------------------------------------------
# page decisions
# --------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "【ご注意】営業・勧誘目的のお問い合わせはお断りしております。",
    "営業目的のお問い合わせはご遠慮ください",
    "セールスお断り",
    "※営業メールお断り",
    "弊社への売り込み・ご提案はご遠慮いただいております",
    "営業目的でのご利用はお控えください。",
    "No solicitations, please.",
    "We do not accept sales inquiries through this form.",
])
def test_refusals(text):
    assert detect.find_refusal("お問い合わせ\n" + text)


@pytest.mark.parametrize("text", [
    "通常2営業日以内にご返信いたします。",
    "営業時間外のお問い合わせは翌営業日の対応となります。ご了承ください。",
    "営業部へのお問い合わせはこちら",
    "広告掲載についてのお問い合わせ",
])
def test_not_refusals(text):
    assert detect.find_refusal(text) is None


def test_captcha_in_another_form_does_not_count():
    snapshot = {"scripts": [], "iframes": [], "captcha_nodes": [{"what": "g-recaptcha", "form": 0}], "forms": []}
    assert detect.find_captcha(snapshot, 1) is None
    assert detect.find_captcha(snapshot, 0)
    assert detect.find_captcha({"scripts": ["https://challenges.cloudflare.com/turnstile/v0/api.js"]}, 1)


def test_contact_links_ranked():
    links = [{"href": "https://a.example/recruit/", "text": "採用情報"},
             {"href": "https://a.example/contact/", "text": "お問い合わせ"},
             {"href": "mailto:info@a.example", "text": "お問い合わせ"},
             {"href": "https://a.example/#top", "text": "お問い合わせ"}]
    assert detect.contact_links(links, "https://a.example/", set()) == ["https://a.example/contact"]


def test_newsletter_form_is_not_a_contact_form():
    newsletter = classify_form([field("f1", name="email", type="email", labels="メールアドレス"),
                                field("f2", type="checkbox", name="agree", labels="配信に同意する")])
    assert detect.score_form({"attrs": "newsletter"}, newsletter) is None
    contact = classify_form([field("f1", name="email", type="email", labels="メール"),
                             field("f2", tag="textarea", type="", name="body", labels="内容")])
    assert detect.score_form({"attrs": "contact"}, contact) is not None


@pytest.mark.parametrize(("text", "kind"), [
    ("入力内容を確認する", "confirm"), ("確認画面へ進む", "confirm"), ("次へ", "confirm"),
    ("送信する", "final"), ("確認して送信", "final"), ("Submit", "final"), ("戻る", None), ("リセット", None),
])
def test_button_kinds(text, kind):
    assert detect.button_kind({"text": text, "type": "submit"}) == kind


def test_outcomes_judge_only_new_lines():
    before = "お問い合わせ\n全角カタカナで入力してください"
    error = detect.classify_page(before, "http://s/c", before + "\n「会社名」は必須項目です。", "http://s/c", True)
    assert error.kind == detect.ERROR
    thanks = detect.classify_page(before, "http://s/c", "送信完了\nお問い合わせありがとうございました。",
                                  "http://s/c", False)
    assert thanks.kind == detect.SUCCESS
    moved = detect.classify_page(before, "http://s/c", "Done", "http://s/thanks.html", False)
    assert moved.kind == detect.SUCCESS
    assert detect.classify_page(before, "http://s/c", before, "http://s/c", True).kind == detect.UNKNOWN_OUTCOME


def test_json_replies():
    assert detect.classify_json_reply({"status": "mail_sent", "message": "ok"}).kind == detect.SUCCESS
    assert detect.classify_json_reply({"inlineMessage": "thanks"}).kind == detect.SUCCESS
    assert detect.classify_json_reply({"status": "validation_failed", "invalid_fields": [{"message": "x"}]}).kind \
        == detect.ERROR
    assert detect.classify_json_reply(["not", "an", "object"]) is None


def test_result_serialises():
    assert FormResult(status="submitted").to_dict()["fields"] == []
