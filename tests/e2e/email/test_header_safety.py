"""What becomes a mail header is checked at input, and a message the sender cannot write ends the campaign
visibly, through the local runtime: control characters (CR/LF above all) in a campaign's subject, sender name,
reminder prefix or a recipient's name are a 422 naming the field with nothing written; an attachment's file name
and content type likewise; a stored message whose header cannot be written is `failed` with the reason, the
campaign, whose other message went out, ends `partial` with how many failed and why, and its creator is told."""
from __future__ import annotations

import time
import uuid

import pytest

from funnel import db
from tests.support.tenants import new_tenant

CAMPAIGN = {"name": "資料送付", "subject": "資料のご送付", "from_name": "山田 太郎",
            "body": "{{name}} 様\nよろしくお願いいたします。",
            "sender_identity": "株式会社サンプル商事 東京都千代田区千代田1-1 03-1234-5678"}
INJECTION = "Yamada\r\nBcc: victim@example.net"  # ASCII: a non-ASCII name is RFC 2047-encoded whole


@pytest.fixture(scope="module")
def tenant(runtime):
    return new_tenant()


def _count(tenant, table: str) -> int:
    with db.tenant_transaction(tenant.tenant_id) as conn:
        return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def _recipient(**extra) -> dict:
    return {"email": f"reader-{uuid.uuid4().hex[:8]}@example.org", "name": "読者", **extra}


@pytest.mark.parametrize(("change", "loc"), [
    ({"from_name": INJECTION}, ["body", "from_name"]),
    ({"from_name": "山田\n太郎"}, ["body", "from_name"]),
    ({"subject": "資料\rBcc: victim@example.net"}, ["body", "subject"]),
    ({"subject": "資料\x00"}, ["body", "subject"]),
    ({"recipients": [_recipient(name=INJECTION)]}, ["body", "recipients", 0, "name"]),
    ({"recipients": [_recipient(company="会社\nBcc: victim@example.net")]}, ["body", "recipients", 0, "company"]),
    ({"recipients": [_recipient(email="reader@example.org\r\nBcc: victim@example.net")]},
     ["body", "recipients", 0, "email"]),
    ({"reminder_strategy": {"rules": [{"when": "not_opened", "after_days": 3}], "subject_prefix": "再送\nBcc: x"}},
     ["body", "reminder_strategy", "subject_prefix"]),
])
def test_a_control_character_in_what_becomes_a_header_is_a_422_naming_the_field(api, tenant, change, loc):
    before = (_count(tenant, "email_campaigns"), _count(tenant, "email_messages"))
    answer = api.post("/v1/email-campaigns", headers=tenant.headers,
                      json={**CAMPAIGN, "recipients": [_recipient()], **change})
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [loc]
    assert (_count(tenant, "email_campaigns"), _count(tenant, "email_messages")) == before


def test_an_attachment_name_or_content_type_that_is_no_file_name_or_mime_type_is_a_422(api, tenant):
    campaign = api.post("/v1/email-campaigns", headers=tenant.headers,
                        json={**CAMPAIGN, "recipients": [_recipient()]}).json()
    url = f"/v1/email-campaigns/{campaign['id']}/attachments"
    bad = [({"filename": ".."}, "filename"), ({"filename": "."}, "filename"), ({"filename": "a/b.pdf"}, "filename"),
           ({"filename": "..\\b.pdf"}, "filename"), ({"filename": "a\r\nb.pdf"}, "filename"),
           ({"filename": "a.pdf", "content_type": "application/pdf\r\nX-Evil: 1"}, "content_type"),
           ({"filename": "a.pdf", "content_type": "not a type"}, "content_type")]
    for body, field in bad:
        answer = api.post(url, headers=tenant.headers, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert [e["loc"] for e in answer.json()["errors"]] == [["body", field]], body
    assert api.get(f"/v1/email-campaigns/{campaign['id']}", headers=tenant.headers).json()["attachment_urls"] == []
    good = api.post(url, headers=tenant.headers, json={"filename": "資料 v1..2.pdf",
                                                       "content_type": "application/pdf; version=1.7"})
    assert good.status_code == 201, good.text


def test_a_message_whose_header_cannot_be_written_fails_with_the_reason_and_the_campaign_ends(api, tenant):
    good, bad = _recipient(), _recipient()
    campaign = api.post("/v1/email-campaigns", headers=tenant.headers,
                        json={**CAMPAIGN, "name": "壊れた宛名", "recipients": [good, bad]}).json()
    with db.tenant_transaction(tenant.tenant_id) as conn:  # a row stored before input refused control characters
        conn.execute("UPDATE email_messages SET name = %s WHERE campaign_id = %s AND email = %s",
                     (INJECTION, campaign["id"], bad["email"]))
    assert api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers).status_code == 200
    deadline = time.monotonic() + 60
    while api.get(f"/v1/email-campaigns/{campaign['id']}", headers=tenant.headers).json()["status"] == "sending":
        assert time.monotonic() < deadline, "the campaign stayed sending"
        time.sleep(0.2)
    ended = api.get(f"/v1/email-campaigns/{campaign['id']}", headers=tenant.headers).json()
    assert ended["status"] == "partial", ended  # one went out, one could not
    assert ended["error"].startswith("1 of 2 messages failed: the message cannot be written as MIME"), ended
    messages = {m["email"]: m for m in api.get(f"/v1/email-campaigns/{campaign['id']}/messages",
                                               headers=tenant.headers).json()["items"]}
    assert messages[good["email"]]["status"] == "sent" and messages[good["email"]]["error"] is None
    assert messages[bad["email"]]["status"] == "failed"
    assert messages[bad["email"]]["error"].startswith("the message cannot be written as MIME")
    inbox = api.get("/v1/notifications", headers=tenant.headers, params={"category": "email.campaign"}).json()
    assert [n["title"] for n in inbox["items"]] == ["Campaign \"壊れた宛名\": 1 of 2 messages failed"]
    assert inbox["items"][0]["message"].startswith(ended["error"])
