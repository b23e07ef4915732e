"""Who outreach may contact, over the in-memory fake store (conftest.py): a new target is skipped when it is on
the do-not-contact list or its domain was contacted within the re-contact interval; right before submitting,
the list is checked again with the contact's e-mail, phone and corporate number, then the send window and
the daily cap (counted in the send window's time zone)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from funnel.outreach import safety

MONDAY_10_TOKYO = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
WINDOW = {"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00", "timezone": "Asia/Tokyo"}
TARGET = {"domain": "alpha.example.com", "company_name": "株式会社アルファ", "email": "ceo@alpha.example.com",
          "phone": "03-1111-2222", "corporate_number": "1234567890123"}


def test_a_target_nobody_blocked_or_contacted_is_not_skipped(outreach_store):
    assert safety.skip_reason(None, TARGET, 180) is None
    assert outreach_store.suppression_asked == TARGET  # every key of the target is checked


@pytest.mark.parametrize(("kind", "value"), [("domain", "alpha.example.com"), ("email", "ceo@alpha.example.com"),
                                             ("phone", "0311112222"), ("corporate_number", "1234567890123"),
                                             ("company_name", "アルファ")])
def test_a_target_on_the_do_not_contact_list_is_skipped_whichever_key_matches(outreach_store, kind, value):
    outreach_store.suppressed = {kind: {value}}
    assert safety.skip_reason(None, TARGET, 180) == f"{kind} on the do-not-contact list (do_not_contact)"


def test_a_domain_contacted_within_the_interval_is_skipped_and_an_interval_of_0_never_skips(outreach_store):
    outreach_store.contacted_domains = {"alpha.example.com"}
    assert safety.skip_reason(None, TARGET, 180) == "alpha.example.com was contacted within 180 days"
    assert safety.skip_reason(None, TARGET, 0) is None


def test_the_do_not_contact_list_wins_over_the_recontact_interval(outreach_store):
    outreach_store.contacted_domains = {"alpha.example.com"}
    outreach_store.suppressed = {"domain": {"alpha.example.com"}}
    assert "do-not-contact" in safety.skip_reason(None, TARGET, 180)


def _target(store, contact=None):
    contact_id = None
    if contact:
        contact_id = store.insert_contact(None, None, {"company_name": "Alpha", "default_url": None,
                                                       "domain": "alpha.example.com", **contact}, {})["id"]
    return {"contact_id": contact_id, "domain": "alpha.example.com", "company_name": "Alpha"}


def test_before_submitting_the_list_is_checked_again_with_the_contacts_keys(outreach_store):
    target = _target(outreach_store, {"email": "ceo@alpha.example.com", "phone": "0311112222",
                                      "corporate_number": None})
    assert safety.defer_reason(None, target, {}) is None
    assert outreach_store.suppression_asked == {"domain": "alpha.example.com", "company_name": "Alpha",
                                                "email": "ceo@alpha.example.com", "phone": "0311112222"}
    outreach_store.suppressed = {"phone": {"0311112222"}}  # added after the task was created
    assert safety.defer_reason(None, target, {}) == "phone on the do-not-contact list (do_not_contact)"


def test_a_target_given_as_a_url_is_checked_by_its_domain_and_company(outreach_store):
    assert safety.defer_reason(None, _target(outreach_store), {}) is None
    assert outreach_store.suppression_asked == {"domain": "alpha.example.com", "company_name": "Alpha"}


def test_outside_the_send_window_a_target_is_deferred(outreach_store):
    settings = {"send_window": WINDOW}
    assert safety.defer_reason(None, _target(outreach_store), settings, MONDAY_10_TOKYO) is None
    reason = safety.defer_reason(None, _target(outreach_store), settings, MONDAY_10_TOKYO.replace(hour=18))
    assert reason == "outside the send window (09:00-18:00 Asia/Tokyo)"


def test_the_daily_cap_defers_once_todays_submissions_reach_it_counted_in_the_windows_time_zone(outreach_store):
    settings = {"daily_cap": 2, "send_window": {**WINDOW, "timezone": "Europe/Berlin", "days": list(range(7)),
                                                "start": "00:00", "end": "23:59"}}
    outreach_store.record_sent(None, "one.example.com", None, "t")
    assert safety.defer_reason(None, _target(outreach_store), settings) is None
    assert outreach_store.timezone_asked == "Europe/Berlin"
    outreach_store.record_sent(None, "two.example.com", None, "t")
    assert safety.defer_reason(None, _target(outreach_store), settings) == "the daily cap of 2 submissions is reached"


def test_without_a_send_window_days_begin_in_tokyo(outreach_store):
    assert safety.defer_reason(None, _target(outreach_store), {"daily_cap": 5}) is None
    assert outreach_store.timezone_asked == "Asia/Tokyo"
    assert safety.send_timezone({"send_window": None}) == "Asia/Tokyo"


def test_a_suppressed_target_is_deferred_for_that_reason_before_the_window_or_cap_are_asked(outreach_store):
    outreach_store.suppressed = {"domain": {"alpha.example.com"}}
    reason = safety.defer_reason(None, _target(outreach_store), {"send_window": WINDOW, "daily_cap": 0},
                                 MONDAY_10_TOKYO.replace(hour=20))
    assert reason == "domain on the do-not-contact list (do_not_contact)"
    assert not hasattr(outreach_store, "timezone_asked")
