"""Pure content logic: cron/time zones, cron -> EventBridge, extraction, sanitising, images, JSON answers."""
from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pytest

from funnel.content import ai, schedules
from funnel.content.extract import extract
from funnel.content.images import render_png
from funnel.content.wordpress import normalise_base_url, sanitize_html
from funnel.platform.errors import ValidationFailed

UTC = UTC


def test_next_run_in_tokyo_default():
    after = datetime(2026, 11, 22, 0, 30, tzinfo=UTC)  # 09:30 JST
    assert schedules.next_run_at("0 9 * * *", "Asia/Tokyo", after) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def test_next_run_across_spring_forward():
    # New York 2026-03-08: 02:00 -> 03:00. 09:00 local is 14:00 UTC before, 13:00 UTC after.
    after = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)
    assert schedules.next_run_at("0 9 * * *", "America/New_York", after) == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


def test_next_run_across_fall_back():
    after = datetime(2026, 10, 31, 14, 0, tzinfo=UTC)  # Berlin: CEST -> CET on 2026-10-25; London on 10-25 too
    assert schedules.next_run_at("0 9 * * *", "Europe/Berlin", after) == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    before = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    assert schedules.next_run_at("0 9 * * *", "Europe/Berlin", before) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def test_month_end_schedules_skip_short_months():
    after = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert schedules.next_run_at("0 0 31 * *", "UTC", after) == datetime(2026, 3, 31, 0, 0, tzinfo=UTC)
    assert schedules.next_run_at("0 0 29 2 *", "UTC", after) == datetime(2028, 2, 29, 0, 0, tzinfo=UTC)


def test_latest_occurrence_is_stable_for_duplicates():
    at = datetime(2026, 11, 23, 0, 0, 30, tzinfo=UTC)
    assert schedules.latest_occurrence("0 9 * * *", "Asia/Tokyo", at) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert schedules.latest_occurrence("0 9 * * *", "Asia/Tokyo", at.replace(second=59)) == \
        datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("cron, aws", [
    ("0 9 * * 1,3,5", "cron(0 9 ? * MON,WED,FRI *)"),
    ("*/15 * * * *", "cron(*/15 * * * ? *)"),
    ("30 7 1 * *", "cron(30 7 1 * ? *)"),
    ("0 9 * * 1-5", "cron(0 9 ? * MON-FRI *)"),
    ("0 9 * * 0", "cron(0 9 ? * SUN *)"),
])
def test_aws_expression(cron, aws):
    assert schedules.aws_expression(cron) == aws


@pytest.mark.parametrize("cron", ["61 * * * *", "* * * *", "0 24 * * *", "0 9 1 * 1", "0 9 * * */2", "a b c d e"])
def test_invalid_cron_rejected(cron):
    with pytest.raises(ValidationFailed):
        schedules.validate(cron, "Asia/Tokyo")


def test_unknown_zone_rejected():
    with pytest.raises(ValidationFailed):
        schedules.validate("0 9 * * *", "Nowhere/City")


def test_extract_prefers_main_and_drops_chrome():
    page = extract("<html><head><title>Acme | Home</title><meta name='description' content='d'></head><body>"
                   "<nav>menu</nav><main><h1>Acme</h1><p>" + "Useful product text. " * 10 + "</p></main>"
                   "<script>var x</script><footer>foot</footer></body></html>")
    assert page["title"] == "Acme | Home" and page["description"] == "d"
    assert "Useful product text." in page["text"] and "menu" not in page["text"] and "var x" not in page["text"]


def test_sanitize_html_strips_active_content():
    clean = sanitize_html('<h2 onclick="x()">Hi</h2><script>alert(1)</script><a href="javascript:x">l</a>'
                          '<img src="https://e.com/a.png" onerror="x"><p style="color:red">p</p>')
    assert "<script" not in clean and "onclick" not in clean and "javascript:" not in clean
    assert "onerror" not in clean and "style" not in clean and "<h2>Hi</h2>" in clean


def test_normalise_base_url():
    assert normalise_base_url("https://blog.example.com/wp-admin/") == "https://blog.example.com"
    assert normalise_base_url("https://example.com/blog/wp-json") == "https://example.com/blog"


def test_png_has_the_requested_size_and_is_deterministic():
    png = render_png("320x200", "blue", "seed")
    assert png.startswith(b"\x89PNG") and png == render_png("320x200", "blue", "seed")
    assert int.from_bytes(png[16:20], "big") == 320 and int.from_bytes(png[20:24], "big") == 200
    idat = png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == 200 * (1 + 320 * 3)


def test_json_answers_are_parsed_from_fences():
    assert ai._parse_json('Sure:\n```json\n{"a": 1}\n```') == {"a": 1}
    with pytest.raises(ValueError):
        ai._parse_json("no json here")


def test_offline_outputs_are_labelled_and_deterministic():
    plan = ai.offline_plan("Acme", ["crm", "sales"], 3)
    assert len(plan["articles"]) == 3 and plan == ai.offline_plan("Acme", ["crm", "sales"], 3)
    article = ai.offline_article("T", "crm", ["A", "B"], "Acme", "https://acme.example")
    assert ai.OFFLINE_LABEL in article["html"] and article["meta_description"].startswith("[offline]")
    assert ai.OFFLINE_LABEL in ai.offline_analysis("https://a.example", "Acme", "text")["summary"]


def test_default_prompts_declare_exactly_their_variables():
    from funnel.platform.prompts import placeholders

    for step, prompt in ai.default_prompts().items():
        assert placeholders(prompt["content"]) == set(prompt["variables"]), step
