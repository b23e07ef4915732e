"""Sending decisions over the in-memory fake store (``conftest.email_area``): who is never sent to (the
do-not-contact list, at creation and again right before sending), when a campaign goes out (now, scheduled,
the schedule's run), how it fans out, the tenant's sending limits, and what a provider's refusal does."""
from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from funnel.email import campaigns, delivery, sending, transport
from funnel.platform.errors import Conflict, ServiceUnavailable, ValidationFailed, WorkspaceUnverified
from funnel.platform.principal import Principal
from tests.unit.email.fake_area import TENANT

WRITER = Principal(tenant_id=TENANT, user_id="9d2e0b7a-0000-4000-8000-000000000001", role="member")


def _create(fake, recipients, **fields):
    return campaigns.create_campaign(WRITER, name="Docs", subject="資料", body="{{name}} 様", from_name="山田",
                                     sender_identity="株式会社サンプル 東京都", recipients=recipients,
                                     reminder_strategy=None, **fields)


# ---------------------------------------------------------------- who is never sent to

def test_recipients_are_one_per_normalised_address_and_a_listed_address_or_domain_is_stored_suppressed(email_area):
    email_area.suppressed = {"gone@example.org": "unsubscribed", "blocked.example": "do_not_contact"}
    campaign = _create(email_area, [{"email": "Ann@Example.org", "name": "Ann"}, {"email": "ann@example.org"},
                                    {"email": "gone@example.org"}, {"email": "bob@blocked.example"}])
    messages = {m["email"]: m for m in email_area.messages.values() if m["campaign_id"] == campaign["id"]}
    assert set(messages) == {"ann@example.org", "gone@example.org", "bob@blocked.example"}
    assert messages["ann@example.org"]["name"] == "Ann"  # the first one given wins
    assert messages["ann@example.org"]["status"] == "queued"
    assert messages["gone@example.org"]["status"] == messages["bob@blocked.example"]["status"] == "suppressed"
    assert email_area.audited == ["email_campaign.create"]


@pytest.mark.parametrize("fields, error", [
    ({"recipients": []}, "needs recipients"),
    ({"recipients": [{"email": "a@example.org"}], "subject": "{{unknown}}"}, "unknown variables"),
    ({"recipients": [{"email": "a@example.org"}], "smtp_profile_id": "6f0c0000-0000-4000-8000-000000000000"},
     "unknown smtp_profile_id"),
])
def test_a_campaign_without_recipients_with_unknown_variables_or_profile_is_refused(email_area, fields, error):
    recipients = fields.pop("recipients")
    with pytest.raises(ValidationFailed, match=error):
        campaigns.create_campaign(WRITER, name="Docs", subject=fields.pop("subject", "資料"), body="本文",
                                  from_name="山田", sender_identity="株式会社サンプル", recipients=recipients,
                                  reminder_strategy=None, **fields)
    assert not email_area.campaigns


def test_an_address_suppressed_after_queueing_is_not_sent_and_takes_no_slot(email_area):
    campaign = email_area.add_campaign(status="sending")
    message = email_area.add_message(campaign, "late@example.org")
    email_area.suppressed["late@example.org"] = "complaint"
    assert delivery.deliver(TENANT, message["id"]) == "suppressed"
    assert email_area.messages[message["id"]]["status"] == "suppressed"
    assert "complaint" in email_area.messages[message["id"]]["error"]
    assert not email_area.sent and email_area.slots_used == 0
    assert campaign["status"] == "sent"  # nothing left queued: the campaign is complete


def test_a_queued_message_is_sent_once_with_routing_tags_and_its_first_reminder_set(email_area):
    campaign = email_area.add_campaign(status="sending", reminder_strategy={
        "rules": [{"when": "not_opened", "after_days": 3}, {"when": "opened_not_clicked", "after_days": 2}],
        "max_reminders": 1})
    message = email_area.add_message(campaign, "reader@example.org", name="佐藤")
    other = email_area.add_message(campaign, "other@example.org")
    assert delivery.deliver(TENANT, message["id"]) == "sent"
    assert delivery.deliver(TENANT, message["id"]) == "sent"  # a retried record: the row is no longer queued
    assert len(email_area.sent) == 1 and email_area.slots_used == 1
    assert {"Name": "message_id", "Value": message["id"]} in email_area.sent[0]["tags"]
    assert email_area.messages[message["id"]]["next_reminder_in_days"] == 2  # the earliest rule
    assert campaign["status"] == "sending"  # another message still waits
    delivery.deliver(TENANT, other["id"])
    assert campaign["status"] == "sent" and email_area.metrics.count("EmailsSent") == 2


def test_an_unknown_or_cancelled_message_is_not_sent(email_area):
    campaign = email_area.add_campaign(status="cancelled")
    cancelled = email_area.add_message(campaign, "c@example.org", status="cancelled")
    assert delivery.deliver(TENANT, "00000000-0000-4000-8000-000000000000") == "unknown message"
    assert delivery.deliver(TENANT, cancelled["id"]) == "cancelled"
    assert not email_area.sent and email_area.slots_used == 0


# ---------------------------------------------------------------- when a campaign goes out

def test_sending_now_queues_one_campaign_record_and_a_later_send_at_schedules_it(email_area):
    now = email_area.add_campaign()
    email_area.add_message(now, "a@example.org")
    assert sending.send(WRITER, now["id"]) == {"campaign_id": now["id"], "status": "sending", "queued": 1}
    assert email_area.queued == [{"tenant_id": TENANT, "campaign_id": now["id"], "after": None}]

    later = email_area.add_campaign()
    email_area.add_message(later, "b@example.org")
    send_at = datetime.now(UTC) + timedelta(days=1)
    assert sending.send(WRITER, later["id"], send_at) == {"campaign_id": later["id"], "status": "scheduled",
                                                          "send_at": send_at.isoformat()}
    assert later["status"] == "scheduled" and later["send_at"] == send_at and len(email_area.queued) == 1


def test_a_send_at_in_the_past_sends_now(email_area):
    campaign = email_area.add_campaign()
    email_area.add_message(campaign, "a@example.org")
    assert sending.send(WRITER, campaign["id"], datetime.now(UTC) - timedelta(minutes=1))["status"] == "sending"


def test_only_a_draft_can_be_sent(email_area):
    for status in ("scheduled", "sending", "sent", "cancelled"):
        campaign = email_area.add_campaign(status=status)
        with pytest.raises(Conflict):
            sending.send(WRITER, campaign["id"])
    assert not email_area.queued


def test_an_unverified_workspace_sends_nothing_now_or_later(email_area):
    email_area.directory.unverified.add(TENANT)
    campaign = email_area.add_campaign()
    for send_at in (None, datetime.now(UTC) + timedelta(hours=1)):
        with pytest.raises(WorkspaceUnverified):
            sending.send(WRITER, campaign["id"], send_at)
    assert campaign["status"] == "draft" and not email_area.queued and not email_area.audited


def test_a_campaign_whose_every_recipient_is_suppressed_is_sent_at_once_with_nothing_queued(email_area):
    campaign = email_area.add_campaign()
    email_area.add_message(campaign, "gone@example.org", status="suppressed")
    assert sending.send(WRITER, campaign["id"])["queued"] == 0
    assert campaign["status"] == "sent" and not email_area.queued


def test_when_the_queue_is_unreachable_the_send_is_refused_as_unavailable(email_area):
    campaign = email_area.add_campaign()
    email_area.add_message(campaign, "a@example.org")
    email_area.queue_down = True
    with pytest.raises(ServiceUnavailable):
        sending.send(WRITER, campaign["id"])  # the real transaction rolls back: the campaign stays a draft


def test_the_schedule_queues_the_due_campaigns_it_can_still_start(email_area):
    due = email_area.add_campaign(status="scheduled", send_at="due")
    email_area.add_message(due, "a@example.org")
    email_area.add_message(due, "b@example.org")
    email_area.add_campaign(status="scheduled", send_at="tomorrow")
    assert sending.send_scheduled(TENANT) == 2
    assert due["status"] == "sending" and email_area.queued == [
        {"tenant_id": TENANT, "campaign_id": due["id"], "after": None}]
    assert sending.send_scheduled(TENANT) == 0  # already started: queued once


def test_fan_out_queues_records_of_ten_message_ids_and_the_next_chunk(email_area, monkeypatch):
    monkeypatch.setattr(sending, "FAN_OUT_CHUNK", 25)
    campaign = email_area.add_campaign(status="sending")
    for i in range(30):
        email_area.add_message(campaign, f"r{i}@example.org")
    assert sending.fan_out(TENANT, campaign["id"], None) == 25
    records = email_area.queued
    assert [len(r["message_ids"]) for r in records[:-1]] == [10, 10, 5]
    assert records[-1] == {"tenant_id": TENANT, "campaign_id": campaign["id"],
                           "after": records[-2]["message_ids"][-1]}
    email_area.queued = []
    assert sending.fan_out(TENANT, campaign["id"], records[-1]["after"]) == 5
    assert [len(r["message_ids"]) for r in email_area.queued] == [5]  # the last chunk queues no further one


def test_fan_out_of_a_campaign_that_is_no_longer_sending_queues_nothing(email_area):
    campaign = email_area.add_campaign(status="cancelled")
    email_area.add_message(campaign, "a@example.org")
    assert sending.fan_out(TENANT, campaign["id"], None) == 0 and not email_area.queued


# ---------------------------------------------------------------- sending limits

def test_over_the_per_second_limit_a_message_waits_a_second_and_over_the_daily_limit_the_throttle_delay(email_area):
    campaign = email_area.add_campaign(status="sending")
    message = email_area.add_message(campaign, "a@example.org")
    email_area.slots = (14, 100)  # the default 14 per second
    with pytest.raises(transport.EmailThrottled) as second:
        delivery.deliver(TENANT, message["id"])
    assert second.value.retry_after == 1
    email_area.slots = (0, 50_000)  # the default 50,000 per 24 hours
    with pytest.raises(transport.EmailThrottled) as day:
        delivery.deliver(TENANT, message["id"])
    assert day.value.retry_after is None  # the configured throttle delay
    assert email_area.messages[message["id"]]["status"] == "queued" and not email_area.sent
    email_area.slots = (13, 49_999)
    assert delivery.deliver(TENANT, message["id"]) == "sent" and email_area.slots_used == 1


# ---------------------------------------------------------------- what a provider's answer means

def _ses_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "no"}}, "SendEmail")


@pytest.mark.parametrize("code", ["MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException"])
def test_a_message_ses_refuses_for_good_is_failed_with_the_reason(email_area, monkeypatch, code):
    campaign = email_area.add_campaign(status="sending")
    message = email_area.add_message(campaign, "a@example.org")

    class Refusing:
        def send_email(self, **request):
            raise _ses_error(code)

    monkeypatch.setattr(transport, "_ses_client", Refusing)
    assert delivery.deliver(TENANT, message["id"]) == "failed"
    assert email_area.messages[message["id"]]["error"] == f"SES {code}: no"
    assert campaign["status"] == "failed"  # a failed message is not waiting any more, and none went out
    assert campaign["error"] == f"no message was sent, 1 failed: SES {code}: no"


@pytest.mark.parametrize("error, raised", [
    (_ses_error("Throttling"), transport.EmailThrottled),
    (_ses_error("AccountSendingPausedException"), ClientError),  # account-wide: retried, then the DLQ
])
def test_ses_throttling_waits_and_other_ses_errors_are_retried(email_area, monkeypatch, error, raised):
    campaign = email_area.add_campaign(status="sending")
    message = email_area.add_message(campaign, "a@example.org")

    class Failing:
        def send_email(self, **request):
            raise error

    monkeypatch.setattr(transport, "_ses_client", Failing)
    with pytest.raises(raised):
        delivery.deliver(TENANT, message["id"])
    assert email_area.messages[message["id"]]["status"] == "queued"


@pytest.mark.parametrize("error, outcome", [
    (smtplib.SMTPRecipientsRefused({"a@example.org": (550, b"no such user")}), "bounced"),
    (smtplib.SMTPDataError(554, b"content refused"), "failed"),
    (smtplib.SMTPRecipientsRefused({"a@example.org": (450, b"try later")}), None),
])
def test_an_smtp_refusal_at_rcpt_is_a_hard_bounce_a_5xx_is_final_and_a_4xx_is_retried(email_area, monkeypatch,
                                                                                        error, outcome):
    campaign = email_area.add_campaign(status="sending", smtp_profile_id="6f0c0000-0000-4000-8000-000000000001")
    message = email_area.add_message(campaign, "a@example.org")

    def refuse(conn, tenant_id, profile_id, mail, recipient):
        raise error

    monkeypatch.setattr(transport.smtp, "send", refuse)
    if outcome is None:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            delivery.deliver(TENANT, message["id"])
        assert email_area.messages[message["id"]]["status"] == "queued"
        return
    assert delivery.deliver(TENANT, message["id"]) == outcome
    bounces = [e for e in email_area.events if e["type"] == "bounce"]
    if outcome == "bounced":
        assert email_area.suppressed == {"a@example.org": "hard_bounce"}
        assert bounces[0]["detail"]["reported_by"] == "smtp" and "EmailsBounced" in email_area.metrics
    else:
        assert not bounces and not email_area.suppressed
        assert email_area.messages[message["id"]]["error"] == "SMTP 554 content refused"
