"""The plan's e-mails on the sender's path, over the e-mail area's in-memory fake (``tests.unit.email.fake_area``):
a message or a reminder round over the month's limit is refused for good and nothing goes out; one that is not sent
after all gives its unit back. The counter itself is tests/integration/billing's."""
from __future__ import annotations

from decimal import Decimal

import pytest

from funnel.billing import limits
from funnel.email import delivery, transport
from tests.unit.email.fake_area import TENANT, email_area  # noqa: F401 (a fixture)

STRATEGY = {"rules": [{"when": "not_opened", "after_days": 3}], "max_reminders": 2}


@pytest.fixture
def plan(monkeypatch, email_area):  # noqa: F811 (the fixture above)
    """``plan.refuse = True``: the month's e-mails are used up; ``plan.taken`` / ``plan.given_back`` count units."""
    class Plan:
        refuse, taken, given_back = False, 0, 0

        def take(self, conn, tenant_id, metric, amount=1):
            assert metric == "emails"
            if self.refuse:
                return limits.PlanLimitReached("free", "emails", Decimal(10_000), Decimal(10_000), None)
            self.taken += amount
            return None

        def give_back(self, conn, metric, amount=1):
            self.given_back += amount

    state = Plan()
    monkeypatch.setattr(limits, "take", state.take)
    monkeypatch.setattr(limits, "give_back", state.give_back)
    return state


def test_a_first_message_over_the_limit_fails_with_the_reason_and_is_not_sent(email_area, plan):  # noqa: F811
    message = email_area.add_message(email_area.add_campaign(status="sending"), "a@example.org")
    plan.refuse = True
    assert delivery.deliver(TENANT, message["id"]) == "failed"
    stored = email_area.messages[message["id"]]
    assert stored["status"] == "failed" and "limit of 10000 e-mails" in stored["error"]
    assert not email_area.sent and plan.given_back == 0


def test_a_reminder_over_the_limit_is_refused_and_stops(email_area, plan):  # noqa: F811
    campaign = email_area.add_campaign(status="sent", reminder_strategy=STRATEGY)
    message = email_area.add_message(campaign, "a@example.org", status="sent", sent_at="then",
                                     next_reminder_in_days=0)
    plan.refuse = True
    assert delivery.deliver(TENANT, message["id"], reminder_round=1) == "reminder refused"
    assert not email_area.sent and email_area.messages[message["id"]]["status"] == "sent"


def test_a_message_sent_keeps_its_unit_and_one_refused_by_ses_gives_it_back(email_area, plan, monkeypatch):  # noqa: F811
    campaign = email_area.add_campaign(status="sending")
    sent = email_area.add_message(campaign, "a@example.org")
    assert delivery.deliver(TENANT, sent["id"]) == "sent" and (plan.taken, plan.given_back) == (1, 0)

    class Refusing:
        def send_email(self, **request):
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "MessageRejected", "Message": "not verified"}}, "SendEmail")

    monkeypatch.setattr(transport, "_ses_client", Refusing)
    refused = email_area.add_message(campaign, "b@example.org")
    assert delivery.deliver(TENANT, refused["id"]) == "failed" and (plan.taken, plan.given_back) == (2, 1)
