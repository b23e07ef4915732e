"""E-mail tracking's touch for the community area (funnel.community.touches), over the in-memory fake store: a
person's click sends one touch after it is recorded; a machine's click (HEAD, scanner, seconds after delivery), a
repeated request, an open or an unsubscribe sends none; a touch that cannot be sent leaves the click recorded."""
from __future__ import annotations

import pytest

from funnel.community import touches
from funnel.email import events
from tests.unit.email.fake_area import TENANT

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"


@pytest.fixture
def sent(monkeypatch) -> list:
    found: list = []
    monkeypatch.setattr(touches, "send", found.append)
    return found


def _message(fake, **fields):
    campaign = fake.add_campaign(status="sent")
    return fake.add_message(campaign, "taro@example.co.jp", **{"status": "sent", "sent_at": "then", "age": 3600.0,
                                                               "name": "山田 太郎", "company": "株式会社アクメ",
                                                               **fields})


def _click(message, agent=BROWSER, method="GET", dedup_key="click:m:req-1", event_type="click"):
    return events.record_event(TENANT, message["id"], event_type, url="https://docs.example.com/a", user_agent=agent,
                               ip="198.51.100.7", method=method, dedup_key=dedup_key, reminder_round=None)


def test_a_persons_click_sends_one_touch_with_the_recipient(email_area, sent):
    message = _message(email_area, reminder_sent=1)
    assert _click(message) is True
    [touch] = sent
    assert isinstance(touch, touches.EmailClick) and str(touch.tenant_id) == TENANT
    assert (touch.touch_id, touch.email, touch.name, touch.company) == ("click:m:req-1", "taro@example.co.jp",
                                                                        "山田 太郎", "株式会社アクメ")
    assert str(touch.email_campaign_id) == message["campaign_id"] and str(touch.email_message_id) == message["id"]
    assert touch.url == "https://docs.example.com/a" and touch.reminder_round == 1
    assert _click(message) is False and len(sent) == 1  # the same request again: recorded once, one touch


@pytest.mark.parametrize(("agent", "method", "age"), [
    (BROWSER, "HEAD", 3600.0), ("curl/8.4.0", "GET", 3600.0), (None, "GET", 3600.0), (BROWSER, "GET", 3.0),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "GET", 3600.0),
])
def test_a_machines_click_sends_no_touch(email_area, sent, agent, method, age):
    message = _message(email_area, age=age)
    assert _click(message, agent=agent, method=method) is True  # recorded, flagged as a machine's
    assert email_area.events[-1]["is_machine"] and sent == []


def test_opens_and_unsubscribes_send_no_touch(email_area, sent):
    message = _message(email_area)
    _click(message, event_type="open", dedup_key="open:m:1")
    _click(message, event_type="unsubscribe", dedup_key="unsubscribe:m:1")
    assert sent == []


def test_a_touch_the_contract_cannot_carry_leaves_the_click_recorded(email_area, sent):
    message = _message(email_area, campaign_id="not-a-uuid")
    assert _click(message) is True and sent == [] and email_area.events[-1]["type"] == "click"
