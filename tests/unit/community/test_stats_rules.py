"""The stats rules without a database: buckets of a time series in a time zone (days, ISO weeks, months, across a
daylight-saving change and the bucket limit), IANA zones, ranges, the funnel's conversion between stages, dense
series, the funnel map's checks, and the segments' windows, periods, definitions and cursors."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from funnel.community import segments, stats
from funnel.platform.errors import ValidationFailed
from funnel.platform.pagination import encode_cursor

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")


def _loc(excinfo) -> list:
    return excinfo.value.extra["errors"][0]["loc"]


def test_day_buckets_are_local_dates():
    # 15:00 UTC on 1 Feb is midnight of 2 Feb in Tokyo: [that, +3 days) touches 2, 3 and 4 Feb there
    start = datetime(2026, 2, 1, 15, tzinfo=UTC)
    assert stats.bucket_starts(start, start + timedelta(days=3), "day", TOKYO) == [
        date(2026, 2, 2), date(2026, 2, 3), date(2026, 2, 4)]
    assert stats.bucket_starts(start, start + timedelta(days=3), "day", ZoneInfo("UTC")) == [
        date(2026, 2, 1), date(2026, 2, 2), date(2026, 2, 3), date(2026, 2, 4)]


def test_week_buckets_start_on_monday_and_month_buckets_on_the_first():
    start = datetime(2026, 2, 1, tzinfo=UTC)  # a Sunday
    assert stats.bucket_starts(start, datetime(2026, 2, 10, tzinfo=UTC), "week", ZoneInfo("UTC")) == [
        date(2026, 1, 26), date(2026, 2, 2), date(2026, 2, 9)]
    assert stats.bucket_starts(datetime(2025, 11, 20, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), "month",
                               ZoneInfo("UTC")) == [date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1)]


def test_a_daylight_saving_change_keeps_one_bucket_per_local_day():
    start = datetime(2026, 3, 7, 5, tzinfo=UTC)  # midnight of 7 March in New York; clocks go forward on the 8th
    assert stats.bucket_starts(start, start + timedelta(days=3), "day", NEW_YORK) == [
        date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)]


def test_too_many_buckets_or_an_unknown_interval_name_the_interval():
    with pytest.raises(ValidationFailed) as excinfo:
        stats.bucket_starts(datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "day", TOKYO)
    assert _loc(excinfo) == ["query", "interval"]
    with pytest.raises(ValidationFailed) as excinfo:
        stats.bucket_starts(datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=UTC), "hour", TOKYO)
    assert _loc(excinfo) == ["query", "interval"]


@pytest.mark.parametrize("name", ["Mars/Olympus", "localtime", "posixrules", "+09:00", "../etc/passwd", "JST",
                                  "posix/Asia/Tokyo"])
def test_only_iana_zones(name):
    with pytest.raises(ValidationFailed) as excinfo:
        stats.zone_named(name, ["query", "tz"])
    assert _loc(excinfo) == ["query", "tz"]


def test_iana_zones_and_utc():
    assert stats.zone_named("Asia/Tokyo", ["query", "tz"]) == TOKYO
    assert stats.zone_named("UTC", ["query", "tz"]) == ZoneInfo("UTC")


def test_range_defaults_and_order():
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert stats.time_range(None, None, now=now) == (now - timedelta(days=30), now)
    assert stats.time_range(None, datetime(2026, 2, 1, tzinfo=UTC), now=now) == (
        datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    with pytest.raises(ValidationFailed) as excinfo:
        stats.time_range(now, now, now=now)
    assert _loc(excinfo) == ["query", "to"]


def test_conversion_is_reached_over_the_previous_reached():
    rows = [{"stage_key": key, "order_no": n, "title": key.title(), "activities": a, "developers": d, "reached": r}
            for key, n, a, d, r in (("engagement", 2, 5, 3, 3), ("awareness", 1, 9, 4, 4), ("adoption", 3, 1, 1, 2),
                                    ("advocacy", 4, 0, 0, 0))]
    report = stats.funnel_report(rows)
    assert [(s["stage_key"], s["conversion_from_previous"]) for s in report] == [
        ("awareness", None), ("engagement", Decimal("0.7500")), ("adoption", Decimal("0.6667")),
        ("advocacy", Decimal("0.0000"))]
    assert stats.rate(1, 0) is None and stats.rate(2, 3) == Decimal("0.6667")


def test_dense_series_fill_every_bucket():
    buckets = [date(2026, 2, 1), date(2026, 2, 2), date(2026, 2, 3)]
    rows = [{"bucket": date(2026, 2, 2), "key": "star", "activities": 2, "developers": 1},
            {"bucket": date(2026, 2, 1), "key": "click", "activities": 5, "developers": 3},
            {"bucket": date(2026, 2, 3), "key": "star", "activities": 1, "developers": 1}]
    series = stats.dense_series(rows, buckets, "action")
    assert [s["key"] for s in series] == ["click", "star"]  # most activities first
    assert [p["activities"] for p in series[1]["points"]] == [0, 2, 1]
    assert stats.dense_series([], buckets, "total") == [
        {"key": None, "points": [{"start": b, "activities": 0, "developers": 0} for b in buckets]}]


def test_funnel_map_checks_stages_and_duplicates():
    stages = {"awareness", "engagement", "adoption", "advocacy"}
    stats.check_mappings([("click", "awareness"), ("signup", "adoption")], stages)
    with pytest.raises(ValidationFailed) as excinfo:
        stats.check_mappings([("click", "awareness"), ("star", "delight")], stages)
    assert _loc(excinfo) == ["body", "mappings", 1, "stage_key"]
    with pytest.raises(ValidationFailed) as excinfo:
        stats.check_mappings([("click", "awareness"), ("click", "adoption")], stages)
    assert _loc(excinfo) == ["body", "mappings", 1, "action"]


def test_active_then_silent_window():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert segments.silent_window({"active_days": 90, "silent_days": 30}, now) == (
        datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC))


def test_this_quarter_is_the_local_calendar_quarter():
    # 31 March 20:00 UTC is already 1 April in Tokyo: the second quarter there
    now = datetime(2026, 3, 31, 20, tzinfo=UTC)
    assert segments.engaged_period({"period": "quarter", "tz": "Asia/Tokyo"}, now) == (
        datetime(2026, 3, 31, 15, tzinfo=UTC), datetime(2026, 6, 30, 15, tzinfo=UTC))
    assert segments.engaged_period({"period": "quarter", "tz": "UTC"}, now) == (
        datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert segments.engaged_period({"period": "month", "tz": "UTC"}, datetime(2026, 12, 5, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert segments.engaged_period({"period": "last_days", "days": 7}, now) == (now - timedelta(days=7), now)


def test_definitions():
    assert segments.clean_definition({"kind": "most_engaged", "top": 10, "period": "quarter", "days": 5,
                                      "tz": "Asia/Tokyo"}) == (
        "most_engaged", {"top": 10, "period": "quarter", "tz": "Asia/Tokyo"})
    with pytest.raises(ValidationFailed) as excinfo:
        segments.clean_definition({"kind": "most_engaged", "top": 10, "period": "last_days", "days": None,
                                   "tz": "UTC"})
    assert _loc(excinfo) == ["body", "definition", "days"]
    with pytest.raises(ValidationFailed) as excinfo:
        segments.clean_definition({"kind": "most_engaged", "top": 10, "period": "month", "tz": "Tokyo"})
    assert _loc(excinfo) == ["body", "definition", "tz"]


@pytest.mark.parametrize("values", [["yesterday", str(uuid.uuid4())], ["2026-01-01T00:00:00", str(uuid.uuid4())],
                                    ["12", "nope"], ["-3", str(uuid.uuid4())], ["１２", str(uuid.uuid4())],
                                    ["9" * 30, str(uuid.uuid4())]])
def test_crafted_member_cursors_are_refused(values):
    with pytest.raises(ValidationFailed) as excinfo:
        segments.member_position(encode_cursor(values))
    assert _loc(excinfo) == ["query", "cursor"]


def test_member_cursors_of_both_kinds():
    developer = uuid.uuid4()
    assert segments.member_position(encode_cursor(["12", str(developer)])) == ("12", developer)
    moment = "2026-01-01T00:00:00+00:00"
    assert segments.member_position(encode_cursor([moment, str(developer)])) == (moment, developer)
    assert segments.member_position(None) is None
