"""One identity across the product, the rules without a database: which domains link a company and an
organization (normalised as identity does, never free mail), first-touch sources, shortlinks recognised in a
link, and the touch contract (funnel.community.touches: parsing, links of a message, sending that never fails
its caller)."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from funnel.community import crossarea, touches

TENANT = uuid.UUID("7d1f3f2e-0000-4000-8000-0000000000aa")


@pytest.mark.parametrize(("raw", "expected"), [
    ("Example.CO.JP", "example.co.jp"), ("https://www.example.com/contact?x=1", "example.com"),
    ("ｅｘａｍｐｌｅ.com", "example.com"), ("example.com.", "example.com"), ("gmail.com", None),
    ("https://www.yahoo.co.jp/", None), ("localhost", None), (None, None), ("", None),
])
def test_company_domains_are_normalised_as_identity_does_and_never_free_mail(raw, expected):
    assert crossarea.company_domain(raw) == expected


@pytest.mark.parametrize(("address", "expected"), [
    ("Taro <Taro.Yamada@Example.co.jp>", "example.co.jp"), ("info@www.example.com", "example.com"),
    ("someone@gmail.com", None), ("someone@googlemail.com", None), ("not an address", None), (None, None),
])
def test_the_company_domain_of_an_email_address(address, expected):
    assert crossarea.email_domain(address) == expected


@pytest.mark.parametrize(("org_domain", "contact", "expected"), [
    ("example.com", {"domain": "example.com", "email": None}, "domain"),
    ("example.com", {"domain": "www.EXAMPLE.com", "email": "x@other.com"}, "domain"),
    ("example.com", {"domain": "other.com", "email": "Sales@Example.com"}, "email_domain"),
    ("example.com", {"domain": "sub.example.com", "email": None}, None),  # a subdomain is another site
    ("example.com", {"domain": "other.com", "email": "example@gmail.com"}, None),
    ("gmail.com", {"domain": "gmail.com", "email": "a@gmail.com"}, None),  # a free-mail organization links nothing
    (None, {"domain": "example.com", "email": None}, None),
])
def test_a_contact_is_a_company_of_an_organization_by_its_site_or_its_mailbox_domain(org_domain, contact, expected):
    assert crossarea.link_reason(org_domain, contact) == expected


@pytest.mark.parametrize(("source", "expected"), [("email", "email"), ("outreach", "outreach"),
                                                  ("shortlink", "shortlink"), ("github", "other"), ("csv", "other")])
def test_first_touch_sources(source, expected):
    assert crossarea.first_touch_source(source) == expected


def test_shortlinks_are_recognised_on_their_own_host_or_the_default_one():
    links = [{"shortlink_id": 1, "key": "launch", "host": ""},
             {"shortlink_id": 2, "key": "promo", "host": "go.acme.jp"}]
    urls = ["https://funnel.example/s/launch", "https://go.acme.jp/s/promo?utm_source=x", "https://evil.example/s/promo",
            "https://funnel.example/s/launch/extra", "https://funnel.example/x/launch", "mailto:a@b.c", "not a url"]
    found = crossarea.matching_shortlinks(urls, links, "funnel.example")
    assert [link["shortlink_id"] for link in found] == [1, 2]
    assert crossarea.shortlink_key_of("https://Funnel.Example/s/abc") == ("funnel.example", "abc")
    assert crossarea.shortlink_key_of("ftp://funnel.example/s/abc") is None


def _click(**fields) -> touches.EmailClick:
    return touches.EmailClick(**{"tenant_id": TENANT, "touch_id": "click:m:req-1", "occurred_at": datetime.now(UTC),
                                 "email": "taro@example.co.jp", "email_campaign_id": uuid.uuid4(),
                                 "email_message_id": uuid.uuid4(), **fields})


def test_a_touch_travels_as_json_and_comes_back_as_its_kind():
    click = _click(url="https://docs.example.com", reminder_round=1)
    assert touches.parse(click.model_dump_json()) == click
    form = touches.FormSubmission(tenant_id=TENANT, touch_id="target:t", occurred_at=datetime.now(UTC),
                                  domain="example.co.jp", task_id=uuid.uuid4(), target_id=uuid.uuid4())
    assert isinstance(touches.parse(form.model_dump_json()), touches.FormSubmission)
    with pytest.raises(ValidationError):
        touches.parse(json.dumps({"kind": "phone_call", "tenant_id": str(TENANT)}))
    with pytest.raises(ValidationError):
        touches.parse(json.dumps({**json.loads(click.model_dump_json()), "touch_id": ""}))


def test_the_links_of_a_message():
    text = ("資料はこちら https://go.acme.jp/s/promo。詳しくは（https://acme.jp/docs）を。"
            "Again: https://go.acme.jp/s/promo, and http://x.example/a?b=1.")
    assert touches.links_in(text) == ["https://go.acme.jp/s/promo", "https://acme.jp/docs", "http://x.example/a?b=1"]
    assert touches.links_in(None) == []


class _Settings:
    def __init__(self, url):
        self.community_touches_queue_url = url


def test_sending_never_fails_its_caller(monkeypatch):
    from funnel.platform import aws

    sent: list[dict] = []

    class Sqs:
        def send_message(self, **kwargs):
            sent.append(kwargs)

    class DownSqs:
        def send_message(self, **kwargs):
            raise ConnectionError("SQS unreachable")

    monkeypatch.setattr("funnel.settings.get_settings", lambda: _Settings(None))
    assert touches.send(_click()) is False  # no queue configured: nothing to send to
    monkeypatch.setattr("funnel.settings.get_settings", lambda: _Settings("https://sqs.local/q"))
    monkeypatch.setattr(aws, "client", lambda service, **_: Sqs())
    assert touches.send(_click()) is True
    assert sent[0]["QueueUrl"] == "https://sqs.local/q" and touches.parse(sent[0]["MessageBody"]).kind == "email_click"
    monkeypatch.setattr(aws, "client", lambda service, **_: DownSqs())
    assert touches.send(_click()) is False
