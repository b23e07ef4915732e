"""How a campaign ends, over the in-memory fake store (``conftest.email_area``): once nothing is queued it is
``sent`` (no message failed), ``partial`` (some sent, some failed) or ``failed`` (none sent), its ``error`` says how
many failed and why, and the creator of a campaign that did not end ``sent`` is notified; the sweep fails the
messages of a campaign no sender takes up any more, and the campaign then ends the same way."""
from __future__ import annotations

import pytest

from funnel.email import completion, delivery, transport
from tests.unit.email.fake_area import TENANT

OWNER = "9d2e0b7a-0000-4000-8000-000000000001"
BOUND = completion.STALLED_CAMPAIGN_SECONDS


def _campaign(fake, statuses: list[str], **fields):
    """A campaign of the owner's (sending unless ``fields`` say otherwise) with one message per status (a 'failed'
    one says why)."""
    campaign = fake.add_campaign(**{"status": "sending", "user_id": OWNER, "tenant_id": TENANT, "name": "資料送付",
                                    **fields})
    for i, status in enumerate(statuses):
        fake.add_message(campaign, f"r{i}@example.org", status=status,
                         sent_at="earlier" if status == "sent" else None,
                         error="SES MessageRejected: Email address is not verified." if status == "failed" else None)
    return campaign


@pytest.mark.parametrize(("sent", "failed", "status"), [
    (3, 0, "sent"), (0, 0, "sent"), (2, 1, "partial"), (1, 5, "partial"), (0, 2, "failed")])
def test_the_outcome_is_sent_without_failures_partial_with_some_and_failed_with_nothing_sent(sent, failed, status):
    assert completion.outcome(sent, failed) == status


def test_a_campaign_whose_every_message_failed_ends_failed_with_the_reason_and_its_owner_is_told(email_area):
    campaign = _campaign(email_area, ["failed", "failed", "suppressed"])
    assert completion.complete_finished_campaigns(TENANT) == 1
    assert campaign["status"] == "failed"
    assert campaign["error"] == "no message was sent, 2 failed: SES MessageRejected: Email address is not verified. " \
                                "(2 messages)"
    [notice] = email_area.notified
    assert notice["recipient_user_ids"] == [OWNER] and notice["category"] == "email.campaign"
    assert notice["title"] == "Campaign \"資料送付\" failed: no message was sent"
    assert notice["body"].startswith(campaign["error"]) and notice["priority"] == "HIGH"
    assert (notice["related_entity_type"], notice["related_entity_id"]) == ("email_campaign", campaign["id"])


def test_a_campaign_with_sent_and_failed_messages_ends_partial_saying_how_many_failed(email_area):
    campaign = _campaign(email_area, ["sent", "sent", "failed", "cancelled"])
    completion.complete_finished_campaigns(TENANT)
    assert campaign["status"] == "partial"
    assert campaign["error"] == "1 of 3 messages failed: SES MessageRejected: Email address is not verified."
    assert [n["title"] for n in email_area.notified] == ["Campaign \"資料送付\": 1 of 3 messages failed"]


def test_a_campaign_without_failures_ends_sent_with_no_error_and_no_notification(email_area):
    campaign = _campaign(email_area, ["sent", "suppressed", "cancelled"])
    everyone_suppressed = _campaign(email_area, ["suppressed"])
    assert completion.complete_finished_campaigns(TENANT) == 2
    assert (campaign["status"], campaign["error"]) == ("sent", None)
    assert everyone_suppressed["status"] == "sent" and not email_area.notified


def test_a_campaign_with_a_message_still_queued_is_left_sending(email_area):
    campaign = _campaign(email_area, ["failed", "queued"])
    assert completion.complete_finished_campaigns(TENANT) == 0
    assert campaign["status"] == "sending" and not email_area.notified


def test_a_bounce_even_one_refused_at_rcpt_is_an_answer_to_a_sent_mail_not_a_failure(email_area):
    campaign = _campaign(email_area, ["failed"])
    email_area.add_message(campaign, "refused@example.org", status="bounced", error="SMTP 550 no such user")
    email_area.add_message(campaign, "later@example.org", status="complained", sent_at="earlier")
    completion.complete_finished_campaigns(TENANT)
    assert campaign["status"] == "partial"  # as the stats count them: 2 sent (1 bounced, 1 complained), 1 failed
    assert campaign["error"] == "1 of 3 messages failed: SES MessageRejected: Email address is not verified."


def test_the_error_names_the_most_frequent_reasons_first_cut_to_length_and_counts_the_others(email_area):
    campaign = _campaign(email_area, ["sent"])
    reasons = ["SMTP 554 content refused"] * 3 + ["x" * 400] * 2 + ["SES BadRequestException: no", "SMTP 552 big"]
    for i, reason in enumerate(reasons):
        email_area.add_message(campaign, f"f{i}@example.org", status="failed", error=reason)
    completion.complete_finished_campaigns(TENANT)
    assert campaign["status"] == "partial"
    long_reason = "x" * (completion.REASON_CHARS - 1) + "…"
    assert campaign["error"] == (f"7 of 8 messages failed: SMTP 554 content refused (3 messages); {long_reason} "
                                 f"(2 messages); SES BadRequestException: no; 1 more for other reasons")


def test_each_delivery_ends_its_campaign_when_it_was_the_last_message(email_area, monkeypatch):
    campaign = _campaign(email_area, [])
    sent = email_area.add_message(campaign, "ok@example.org")
    refused = email_area.add_message(campaign, "no@example.org")

    class RefusingOne:
        def send_email(self, **request):
            if request["Destination"]["ToAddresses"] == ["no@example.org"]:
                from botocore.exceptions import ClientError

                raise ClientError({"Error": {"Code": "MessageRejected", "Message": "not verified"}}, "SendEmail")
            return {"MessageId": "ses-1"}

    monkeypatch.setattr(transport, "_ses_client", RefusingOne)
    assert delivery.deliver(TENANT, sent["id"]) == "sent" and campaign["status"] == "sending"
    assert delivery.deliver(TENANT, refused["id"]) == "failed"
    assert campaign["status"] == "partial" and campaign["error"] == "1 of 2 messages failed: SES MessageRejected: " \
                                                                    "not verified"


# ---------------------------------------------------------------- campaigns no sender takes up any more

def test_a_stalled_campaign_has_its_queued_messages_failed_as_lost_and_ends(email_area):
    partly = _campaign(email_area, ["sent", "queued", "queued"], updated_ago=BOUND + 60)
    never = _campaign(email_area, ["queued"], updated_ago=BOUND + 60)  # its fan-out record never arrived
    for message in email_area._of(partly["id"]):
        message["attempted_ago"] = BOUND + 1
    assert completion.fail_stalled_campaigns(TENANT) == 2
    lost = [m for m in email_area._of(partly["id"]) if m["status"] == "failed"]
    assert [m["error"] for m in lost] == [completion.LOST_IN_THE_QUEUE] * 2
    assert partly["status"] == "partial"
    assert partly["error"] == "2 of 3 messages failed: no progress (lost in the queue) (2 messages)"
    assert never["status"] == "failed" and never["error"] == "no message was sent, 1 failed: no progress (lost in " \
                                                             "the queue)"
    assert sorted(n["title"] for n in email_area.notified) == ["Campaign \"資料送付\" failed: no message was sent",
                                                               "Campaign \"資料送付\": 2 of 3 messages failed"]


def test_a_campaign_that_moves_or_just_started_is_not_stalled(email_area):
    moving = _campaign(email_area, ["queued", "queued"], updated_ago=BOUND * 10)
    email_area._of(moving["id"])[0]["attempted_ago"] = BOUND - 60  # a sender took one up lately (throttled, say)
    starting = _campaign(email_area, ["queued"], updated_ago=BOUND - 60)
    scheduled = _campaign(email_area, ["queued"], status="scheduled", updated_ago=BOUND * 10)
    assert completion.fail_stalled_campaigns(TENANT) == 0
    assert [c["status"] for c in (moving, starting, scheduled)] == ["sending", "sending", "scheduled"]
    assert all(m["status"] == "queued" for m in email_area.messages.values()) and not email_area.notified


def test_a_throttled_message_still_counts_as_taken_up(email_area):
    campaign = _campaign(email_area, ["queued"], updated_ago=BOUND * 10)
    [message] = email_area._of(campaign["id"])
    email_area.slots = (0, 50_000)  # the daily limit: it waits
    with pytest.raises(transport.EmailThrottled):
        delivery.deliver(TENANT, message["id"])
    assert message["attempted_ago"] == 0 and message["status"] == "queued"
    assert completion.fail_stalled_campaigns(TENANT) == 0 and campaign["status"] == "sending"
