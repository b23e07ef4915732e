"""Pure outreach rules: URL/domain/phone/company normalisation, CSV decoding and parsing, template
variables, suppression keys and the send window."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from funnel.outreach import contacts, safety, templates
from funnel.platform import suppression
from funnel.platform.errors import ValidationFailed
from funnel.platform.normalize import domain_of, normalize_company, normalize_phone, normalize_url

TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(("raw", "expected"), [
    ("example.co.jp", "https://example.co.jp/"),
    ("  HTTP://WWW.Example.COM/Contact?x=1#top ", "http://www.example.com/Contact?x=1"),
    ("ｅｘａｍｐｌｅ．ｃｏｍ/お問い合わせ", "https://example.com/お問い合わせ"),  # full-width, as typed in Excel
    ("https://日本語.jp/", "https://xn--wgv71a119e.jp/"),
    ("https://example.com:8443/form", "https://example.com:8443/form"),
])
def test_urls_are_normalised(raw, expected):
    assert normalize_url(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "ftp://example.com", "javascript:alert(1)", "localhost", "mailto:a@b.jp"])
def test_what_is_not_a_web_address_is_refused(raw):
    with pytest.raises(ValidationFailed):
        normalize_url(raw)


def test_domains_phones_and_company_names_compare_equal_however_they_are_written():
    assert domain_of("https://www.Example.co.jp/a") == domain_of("http://example.co.jp") == "example.co.jp"
    assert normalize_phone("０３－１２３４－５６７８") == normalize_phone("03 (1234) 5678") == "0312345678"
    assert normalize_company("株式会社 サンプル") == normalize_company("サンプル(株)")
    assert normalize_company("サンプル(株)") == normalize_company("㈱サンプル")
    assert normalize_company("Sample Co., Ltd.") == normalize_company("sample inc.") == "sample"


def test_suppression_keys_are_normalised_per_kind():
    assert suppression.normalized("domain", "https://www.Blocked.example.com/x") == "blocked.example.com"
    assert suppression.normalized("domain", "WWW.blocked.example.com") == "blocked.example.com"
    assert suppression.normalized("email", " CEO@Example.COM ") == "ceo@example.com"
    assert suppression.normalized("phone", "03-1111-2222") == "0311112222"
    assert suppression.normalized("corporate_number", "1234-5678-90123") == "1234567890123"


def test_utf8_with_bom_and_cp932_decode_and_byte_soup_is_refused():
    text = "会社名,ホームページ\n株式会社アルファ,alpha.example.jp\n"
    assert contacts.decode_csv(("\ufeff" + text).encode("utf-8")) == text
    assert contacts.decode_csv(text.encode("cp932")) == text
    assert contacts.decode_csv(text.encode("shift_jis")) == text
    for broken in (b"company,url\n\x82\xa0\xff\xfe\xfd,\xff\xff\n", "会社".encode("utf-16")):
        with pytest.raises(ValidationFailed, match="neither UTF-8 nor Shift_JIS"):
            contacts.decode_csv(broken)


def test_parse_reports_each_rejected_and_duplicate_row_with_its_csv_line_number():
    data = ("Company,Website,Tel,法人番号\n"
            "Alpha,alpha.example.com,03-1111-2222,\n"
            "Alpha again,https://www.alpha.example.com/contact,,\n"
            ",beta.example.com,,\n"
            "Gamma,not a url,,\n"
            "Delta,delta.example.com,,123\n"
            "Epsilon,epsilon.example.com,,1234567890123\n").encode()
    total, accepted, report = contacts._parse(data)
    assert total == 6
    assert [(row, values["domain"]) for row, values in accepted] == [(2, "alpha.example.com"),
                                                                     (7, "epsilon.example.com")]
    assert [(r["row"], r["status"]) for r in report] == [(3, "duplicate"), (4, "rejected"), (5, "rejected"),
                                                        (6, "rejected")]
    assert "company_name is required" in report[1]["reason"] and "13 digits" in report[3]["reason"]


@pytest.mark.parametrize(("header", "missing"), [("会社名,電話番号", "no URL column"),
                                                  ("url,tel", "no company name column")])
def test_a_file_without_a_required_column_is_refused_whole(header, missing):
    with pytest.raises(ValidationFailed, match=missing):
        contacts._parse(f"{header}\nx,y\n".encode())


def test_template_variables_unknown_ones_are_refused_known_ones_render():
    templates.check_variables("{{company_name}} {{contact_person}}様", "{{sender_company}}より")
    with pytest.raises(ValidationFailed) as refused:
        templates.check_variables("{{company_name}} {{ceo_name}} {{budget}}")
    assert "ceo_name" in refused.value.detail and "budget" in refused.value.detail
    assert templates.render("{{company_name}} {{contact_person}}様", {"company_name": "アルファ"}) == "アルファ 様"


@pytest.mark.parametrize(("local", "open_"), [
    (datetime(2026, 11, 23, 10, 0), True),    # Monday 10:00
    (datetime(2026, 11, 23, 8, 59), False),   # before 9:00
    (datetime(2026, 11, 23, 18, 0), False),   # the end is exclusive
    (datetime(2026, 11, 22, 12, 0), False),   # Sunday
])
def test_send_window_weekdays_nine_to_six_in_tokyo(local, open_):
    window = {"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00", "timezone": "Asia/Tokyo"}
    assert (safety.outside_send_window(window, local.replace(tzinfo=TOKYO)) is None) is open_
    assert safety.outside_send_window(None, local.replace(tzinfo=TOKYO)) is None


def test_send_window_is_judged_in_its_own_time_zone():
    window = {"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00", "timezone": "Asia/Tokyo"}
    monday_10_tokyo_in_utc = datetime(2026, 11, 23, 1, 0, tzinfo=ZoneInfo("UTC"))
    assert safety.outside_send_window(window, monday_10_tokyo_in_utc) is None
    reason = safety.outside_send_window(window, datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("UTC")))
    assert reason and "Asia/Tokyo" in reason
