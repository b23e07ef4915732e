"""Event decisions over the in-memory fake store (``conftest.email_area``): tracking events (a machine's open
or click is recorded but flagged and counted apart, a repeated request is recorded once, an unsubscribe
suppresses the address and stops reminders), SES notifications through SNS (complaints and hard bounces
suppress at once, soft bounces from the threshold on, each notification once) and how the stats add up."""
from __future__ import annotations

import json

import pytest

from funnel.email import events, reminders, sns, stats
from tests.unit.email.fake_area import TENANT

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"


def _message(fake, email="reader@example.org", **fields):
    campaign = fake.add_campaign(status="sent")
    return fake.add_message(campaign, email, **{"status": "sent", "sent_at": "then", "age": 3600.0,
                                                "next_reminder_in_days": 2, **fields})


def _record(message, event_type, agent=BROWSER, method="GET", ip="198.51.100.7", dedup_key=None, **kwargs):
    return events.record_event(TENANT, message["id"], event_type, url=kwargs.get("url"), user_agent=agent, ip=ip,
                               method=method, dedup_key=dedup_key, reminder_round=kwargs.get("reminder_round"))


# ---------------------------------------------------------------- tracking events

def test_a_persons_open_is_recorded_for_the_round_last_sent_and_counted(email_area):
    message = _message(email_area, reminder_sent=1)
    assert _record(message, "open") is True
    [event] = email_area.events
    assert event["type"] == "open" and not event["is_machine"] and event["reminder_round"] == 1
    assert event["user_agent"] == BROWSER and event["ip"] == "198.51.100.7"
    assert email_area.metrics == ["EmailOpensRecorded"]
    assert reminders.recipient_state(None, message["id"]) == ("opened_not_clicked", False)


def test_an_event_counts_for_the_round_its_token_names(email_area):
    message = _message(email_area, reminder_sent=2)
    _record(message, "open", reminder_round=0)  # the first mail, opened after two reminders went out
    assert email_area.events[0]["reminder_round"] == 0


@pytest.mark.parametrize("event_type, agent, method, ip, age, reason", [
    ("open", BROWSER, "HEAD", "198.51.100.7", 3600.0, "head_request"),
    ("open", "Mozilla/5.0", "GET", "198.51.100.7", 3600.0, "apple_mail_privacy_protection"),
    ("open", BROWSER, "GET", "17.58.0.10", 3600.0, "apple_mail_privacy_protection"),
    ("click", "Mimecast/1.0", "GET", "198.51.100.7", 3600.0, "scanner_user_agent"),
    ("click", BROWSER, "GET", "198.51.100.7", 3.0, "click_within_seconds_of_delivery"),
    ("click", None, "GET", "198.51.100.7", 3600.0, "no_user_agent"),
])
def test_a_machines_open_or_click_is_recorded_flagged_with_its_reason_and_does_not_count(
        email_area, event_type, agent, method, ip, age, reason):
    message = _message(email_area, age=age)
    assert _record(message, event_type, agent=agent, method=method, ip=ip, url="https://docs.example.com/") is True
    [event] = email_area.events
    assert event["is_machine"] and event["detail"] == {"machine": reason}
    assert email_area.metrics == ["EmailMachineEventsRecorded"]
    assert reminders.recipient_state(None, message["id"]) == ("not_opened", False)  # not a person's


def test_a_click_soon_after_a_reminder_went_out_is_a_machines(email_area):
    message = _message(email_area, age=4.0, reminder_sent=1)  # age: since the last mail (the reminder)
    _record(message, "click", url="https://docs.example.com/")
    assert email_area.events[0]["is_machine"]


def test_a_repeated_request_is_recorded_once(email_area):
    message = _message(email_area)
    results = [_record(message, "open", dedup_key=f"open:{message['id']}:req-1") for _ in range(3)]
    assert results == [True, False, False] and len(email_area.events) == 1


def test_an_event_for_an_unknown_message_is_not_recorded(email_area):
    assert events.record_event(TENANT, "00000000-0000-4000-8000-000000000000", "open", url=None, user_agent=BROWSER,
                               ip=None, method="GET", dedup_key=None) is False
    assert not email_area.events


def test_an_unsubscribe_suppresses_the_address_and_stops_reminders(email_area):
    message = _message(email_area, email="Leaver@Example.org")
    assert _record(message, "unsubscribe", method="POST") is True
    assert email_area.suppressed == {"leaver@example.org": "unsubscribed"}
    assert email_area.messages[message["id"]]["next_reminder_in_days"] is None
    assert email_area.metrics == ["EmailUnsubscribesRecorded"]


def test_a_user_agent_is_stored_at_most_500_characters(email_area):
    message = _message(email_area)
    _record(message, "open", agent=BROWSER + "x" * 1000)
    assert len(email_area.events[0]["user_agent"]) == 500


# ---------------------------------------------------------------- SES notifications

def _notification(message, kind, sns_id="sns-1", **body):
    event = {"notificationType": kind, "mail": {"tags": {"tenant_id": [TENANT], "message_id": [message["id"]]}},
             **body}
    return sns.record_notification(json.loads(json.dumps(event)), sns_id)


def test_a_complaint_suppresses_the_address_and_ends_the_message(email_area):
    message = _message(email_area)
    assert _notification(message, "Complaint", complaint={"complaintFeedbackType": "abuse"}) == {
        "recorded": "Complaint"}
    assert email_area.suppressed == {"reader@example.org": "complaint"}
    assert email_area.messages[message["id"]]["status"] == "complained"
    assert email_area.messages[message["id"]]["next_reminder_in_days"] is None
    assert email_area.metrics == ["EmailComplaints"]


def test_a_hard_bounce_suppresses_at_once(email_area):
    message = _message(email_area)
    assert _notification(message, "Bounce", bounce={"bounceType": "Permanent"}) == {"recorded": "Bounce"}
    assert email_area.suppressed == {"reader@example.org": "hard_bounce"}
    assert email_area.messages[message["id"]]["status"] == "bounced"
    assert email_area.events[0]["type"] == "bounce" and email_area.events[0]["dedup_key"] == "sns:sns-1"


def test_soft_bounces_suppress_the_address_from_the_threshold_on_over_every_campaign(email_area):
    messages = [_message(email_area) for _ in range(3)]  # the same address in three campaigns
    for number, message in enumerate(messages[:2]):
        _notification(message, "Bounce", f"sns-{number}", bounce={"bounceType": "Transient"})
    assert not email_area.suppressed and {m["status"] for m in email_area.messages.values()} == {"sent"}
    _notification(messages[2], "Bounce", "sns-2", bounce={"bounceType": "Transient"})  # the third (threshold 3)
    assert email_area.suppressed == {"reader@example.org": "hard_bounce"}
    assert email_area.messages[messages[2]["id"]]["status"] == "bounced"


def test_each_notification_is_recorded_once(email_area):
    message = _message(email_area)
    _notification(message, "Bounce", bounce={"bounceType": "Transient"})
    assert _notification(message, "Bounce", bounce={"bounceType": "Transient"}) == {"duplicate": True}
    assert len(email_area.events) == 1 and email_area.metrics == ["EmailsBounced"]


def test_a_delivery_is_recorded_and_suppresses_nothing(email_area):
    message = _message(email_area)
    assert _notification(message, "Delivery", delivery={"smtpResponse": "250 ok"}) == {"recorded": "Delivery"}
    assert email_area.events[0]["type"] == "delivery" and not email_area.suppressed
    assert email_area.messages[message["id"]]["status"] == "sent"


def test_notifications_that_are_not_funnels_or_not_bounces_complaints_deliveries_are_ignored(email_area):
    message = _message(email_area)
    assert sns.record_notification({"notificationType": "Bounce", "mail": {"tags": {}}}, "sns-x") == {
        "ignored": "not a Funnel campaign message"}
    assert _notification(message, "Open") == {"ignored": "Open"}
    assert _notification({"id": "00000000-0000-4000-8000-000000000000"}, "Bounce") == {"ignored": "unknown message"}
    assert not email_area.events and not email_area.suppressed


# ---------------------------------------------------------------- stats

def test_rounds_count_each_mail_with_its_own_opens_clicks_and_unsubscribes():
    events_per_round = [{"reminder_round": 0, "type": "open", "total": 5, "unique_messages": 3},
                        {"reminder_round": 1, "type": "click", "total": 2, "unique_messages": 1},
                        {"reminder_round": 1, "type": "unsubscribe", "total": 1, "unique_messages": 1}]
    assert stats.rounds({0: 10, 1: 4}, events_per_round) == [
        {"round": 0, "sent": 10, "opened": {"unique": 3, "total": 5}, "clicked": {"unique": 0, "total": 0},
         "unsubscribed": 0},
        {"round": 1, "sent": 4, "opened": {"unique": 0, "total": 0}, "clicked": {"unique": 1, "total": 2},
         "unsubscribed": 1}]


def test_stats_count_as_sent_only_messages_that_went_out_and_report_machine_events_apart(email_area, monkeypatch):
    campaign = email_area.add_campaign(status="sent")
    figures = {"message_counts_by_status": {"sent": 5, "bounced": 1, "complained": 1, "queued": 2, "suppressed": 3,
                                            "cancelled": 1, "failed": 1},
               "human_event_counts": [{"type": "open", "total": 4, "unique_messages": 2},
                                      {"type": "delivery", "total": 6, "unique_messages": 6}],
               "machine_event_count": 7, "human_clicks_per_link": [], "human_event_counts_per_round": [],
               "sent_per_round": {0: 7, 1: 2}}
    for name, value in figures.items():
        monkeypatch.setattr(stats.store_events, name, lambda conn, campaign_id, value=value: value)
    result = stats.stats(None, campaign["id"])
    assert result["sent"] == 7 and result["reminders_sent"] == 2 and result["delivered"] == 6
    assert result["opened"] == {"unique": 2, "total": 4} and result["clicked"] == {"unique": 0, "total": 0}
    assert result["machine_events_excluded"] == 7
