"""Reminder decisions over the in-memory fake store (``conftest.email_area``): who gets a reminder (a rule
matches their human state: not opened, or opened but not clicked), how many (``max_reminders``), when (the
earliest rule's days, a queued one leased for an hour), and who never does (clicked, unsubscribed, bounced,
complained, suppressed, cancelled). Machine opens and clicks do not change a recipient's state."""
from __future__ import annotations

import pytest

from funnel.email import delivery, reminders
from tests.unit.email.fake_area import TENANT

STRATEGY = {"rules": [{"when": "not_opened", "after_days": 3}, {"when": "opened_not_clicked", "after_days": 2}],
            "max_reminders": 2, "subject_prefix": "【再送】"}


@pytest.mark.parametrize("events, state", [
    (set(), ("not_opened", False)),
    ({"open"}, ("opened_not_clicked", False)),
    ({"open", "click"}, ("clicked", False)),
    ({"click"}, ("clicked", False)),
    ({"delivery"}, ("not_opened", False)),
    ({"unsubscribe"}, ("not_opened", True)),
    ({"open", "bounce"}, ("opened_not_clicked", True)),
    ({"complaint"}, ("not_opened", True)),
])
def test_a_recipients_state_comes_from_their_events(events, state):
    assert reminders.state_of(events) == state


def test_the_next_reminder_is_the_earliest_rules_days_until_the_maximum():
    assert reminders.first_reminder_days(STRATEGY) == 2
    assert reminders.next_reminder_days(STRATEGY, 1) == 2
    assert reminders.next_reminder_days(STRATEGY, 2) is None  # max_reminders reached
    assert reminders.first_reminder_days({**STRATEGY, "max_reminders": 0}) is None
    assert reminders.first_reminder_days({"rules": [{"when": "not_opened"}]}) == reminders.DEFAULT_AFTER_DAYS
    assert reminders.first_reminder_days({"rules": [{"when": "someday", "after_days": 1}]}) is None
    assert reminders.first_reminder_days(None) is None


def _sent(fake, email, strategy=STRATEGY, campaign=None, **fields):
    campaign = campaign or fake.add_campaign(status="sent", reminder_strategy=strategy)
    return fake.add_message(campaign, email, **{"status": "sent", "sent_at": "then", "next_reminder_in_days": 0,
                                                **fields})


def test_due_reminders_are_queued_for_recipients_a_rule_still_matches_and_leased(email_area):
    campaign = email_area.add_campaign(status="sent", reminder_strategy=STRATEGY)
    ignorer = _sent(email_area, "ignorer@example.org", campaign=campaign)
    reader = _sent(email_area, "reader@example.org", campaign=campaign)
    clicker = _sent(email_area, "clicker@example.org", campaign=campaign)
    email_area.add_event(reader, "open")
    email_area.add_event(clicker, "open")
    email_area.add_event(clicker, "click")
    later = _sent(email_area, "later@example.org", campaign=campaign, next_reminder_in_days=1.5)  # not due yet

    assert reminders.send_due_reminders(TENANT) == 2
    assert sorted(email_area.queued, key=lambda r: r["message_id"]) == sorted(
        [{"tenant_id": TENANT, "message_id": m["id"], "reminder_round": 1} for m in (ignorer, reader)],
        key=lambda r: r["message_id"])
    lease = reminders.REMINDER_LEASE_SECONDS / 86400
    assert [email_area.messages[m["id"]]["next_reminder_in_days"] for m in (ignorer, reader)] == [lease, lease]
    assert email_area.messages[clicker["id"]]["next_reminder_in_days"] is None  # clicked: no reminder, ever
    assert email_area.messages[later["id"]]["next_reminder_in_days"] == 1.5


def test_machine_opens_and_clicks_do_not_count_a_privacy_proxy_open_still_gets_the_not_opened_reminder(email_area):
    message = _sent(email_area, "proxied@example.org", strategy={"rules": [{"when": "not_opened", "after_days": 3}]})
    email_area.add_event(message, "open", is_machine=True)
    email_area.add_event(message, "click", is_machine=True)
    assert reminders.send_due_reminders(TENANT) == 1


@pytest.mark.parametrize("event", ["unsubscribe", "bounce", "complaint"])
def test_a_recipient_who_left_gets_no_reminder(email_area, event):
    message = _sent(email_area, "left@example.org")
    email_area.add_event(message, event)
    assert reminders.send_due_reminders(TENANT) == 0 and not email_area.queued
    assert email_area.messages[message["id"]]["next_reminder_in_days"] is None


def test_a_suppressed_recipient_and_one_past_the_maximum_get_no_reminder(email_area):
    suppressed = _sent(email_area, "listed@example.org")
    email_area.suppressed["listed@example.org"] = "manual"
    done = _sent(email_area, "done@example.org", reminder_sent=2)
    only_opened_rule = _sent(email_area, "quiet@example.org",
                             strategy={"rules": [{"when": "opened_not_clicked", "after_days": 1}]})
    assert reminders.send_due_reminders(TENANT) == 0
    assert all(email_area.messages[m["id"]]["next_reminder_in_days"] is None
               for m in (suppressed, done, only_opened_rule))


def test_reminders_of_a_cancelled_campaign_are_not_due(email_area):
    campaign = email_area.add_campaign(status="cancelled", reminder_strategy=STRATEGY)
    _sent(email_area, "a@example.org", campaign=campaign)
    assert reminders.send_due_reminders(TENANT) == 0


def test_a_reminder_round_is_sent_once_with_the_subject_prefix_and_the_next_one_scheduled(email_area):
    message = _sent(email_area, "ignorer@example.org")
    assert delivery.deliver(TENANT, message["id"], reminder_round=1) == "reminder sent"
    assert [m["subject"] for m in email_area.sent] == ["【再送】資料のご送付"]
    assert email_area.messages[message["id"]]["reminder_sent"] == 1
    assert email_area.messages[message["id"]]["next_reminder_in_days"] == 2
    assert delivery.deliver(TENANT, message["id"], reminder_round=1) == "reminder already sent"
    assert delivery.deliver(TENANT, message["id"], reminder_round=2) == "reminder sent"
    assert email_area.messages[message["id"]]["next_reminder_in_days"] is None  # max_reminders: 2
    assert len(email_area.sent) == 2 and email_area.metrics.count("EmailRemindersSent") == 2


def test_a_round_whose_previous_round_did_not_go_out_is_not_sent(email_area):
    message = _sent(email_area, "a@example.org")
    assert delivery.deliver(TENANT, message["id"], reminder_round=2) == "reminder not due"
    assert not email_area.sent and email_area.messages[message["id"]]["next_reminder_in_days"] is None


def test_a_reminder_to_a_recipient_who_clicked_since_it_was_queued_is_not_sent(email_area):
    message = _sent(email_area, "a@example.org")
    email_area.add_event(message, "open")
    email_area.add_event(message, "click")
    assert delivery.deliver(TENANT, message["id"], reminder_round=1) == "reminder not due"
    assert not email_area.sent


def test_a_reminder_to_an_address_suppressed_since_is_not_sent(email_area):
    message = _sent(email_area, "a@example.org")
    email_area.suppressed["example.org"] = "do_not_contact"  # the whole domain
    assert delivery.deliver(TENANT, message["id"], reminder_round=1) == "reminder not due"
    assert not email_area.sent


def test_a_message_that_was_never_sent_gets_no_reminder_and_takes_no_slot(email_area):
    campaign = email_area.add_campaign(status="sending", reminder_strategy=STRATEGY)
    message = email_area.add_message(campaign, "a@example.org")
    assert delivery.deliver(TENANT, message["id"], reminder_round=1) == "reminder not due"
    assert email_area.slots_used == 0
