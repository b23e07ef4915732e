"""A document e-mail campaign through the local runtime: queue -> sender -> SES (moto), real MIME,
tracking pixel, signed clicks, one-click unsubscribe, stats."""
from __future__ import annotations

import email
import email.policy
import re
import time
import uuid

import pytest

from funnel import db
from funnel.email import delivery, events, sending, tokens
from tests.support.tenants import new_tenant
from tests.support.waiting import wait_until

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"


@pytest.fixture(scope="module")
def tenant(runtime):
    return new_tenant()


def _sent_raw(to: str) -> list[email.message.EmailMessage]:
    from moto.ses.models import ses_backends

    backend = ses_backends["123456789012"]["us-east-1"]
    return [email.message_from_string(m.raw_data, policy=email.policy.default) for m in backend.sent_messages
            if hasattr(m, "raw_data") and to in m.destinations]


def _wait_sent(tenant, campaign_id: str, expected: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        with db.tenant_transaction(tenant.tenant_id) as conn:
            rows = conn.execute("SELECT * FROM email_messages WHERE campaign_id = %s", (campaign_id,)).fetchall()
        if sum(r["status"] == "sent" for r in rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _campaign(api, tenant, recipients: list[dict], **extra) -> dict:
    response = api.post("/v1/email-campaigns", headers=tenant.headers, json={
        "name": "資料送付", "subject": "{{company_name}} 様 資料のご送付", "from_name": "山田 太郎",
        "sender_identity": "株式会社サンプル商事 東京都千代田区千代田1-1 03-1234-5678",
        "body": "{{name}} 様\n資料はこちらです: https://docs.example.com/whitepaper.pdf\nよろしくお願いいたします。",
        "recipients": recipients, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_campaign_to_50_contacts_is_real_mime_and_tracks_opens_clicks_and_unsubscribes(runtime, api, tenant):
    suffix = uuid.uuid4().hex[:6]
    recipients = [{"email": f"reader{i}-{suffix}@example.org", "name": f"読者{i}", "company": f"会社{i}"}
                  for i in range(50)]
    blocked = recipients[-1]["email"]
    assert api.post("/v1/do-not-contact", headers=tenant.headers,
                    json={"kind": "email", "value": blocked, "reason": "unsubscribed"}).status_code == 201
    campaign = _campaign(api, tenant, recipients)
    assert api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers).json()["queued"] == 49
    rows = _wait_sent(tenant, campaign["id"], 49)
    assert sorted(r["status"] for r in rows).count("sent") == 49
    assert [r["status"] for r in rows if r["email"] == blocked] == ["suppressed"] and not _sent_raw(blocked)

    first = recipients[0]["email"]
    [mail] = _sent_raw(first)
    assert mail.get_content_type() == "multipart/alternative"
    assert str(mail["Subject"]) == "会社0 様 資料のご送付" and "=?utf-8?" in mail.as_string().lower()
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = str(mail["List-Unsubscribe"]).strip("<>")
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "読者0 様" in text and "配信停止" in text and "株式会社サンプル商事" in text
    pixel = re.search(r'src="([^"]+/t/o/[^"]+\.gif)"', html).group(1)
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1)
    path = lambda url: url.split(runtime.api_url, 1)[-1]  # noqa: E731 (local gateway = public base URL)

    probed = api.head(path(pixel), headers={"user-agent": BROWSER})  # a link checker's HEAD: a machine event
    assert probed.status_code == 200 and probed.headers["content-type"] == "image/gif"
    opened = api.get(path(pixel), headers={"user-agent": BROWSER})
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    assert "no-store" in opened.headers["cache-control"] and opened.content.startswith(b"GIF89a")
    with db.tenant_transaction(tenant.tenant_id) as conn:  # as if it had just gone out
        conn.execute("UPDATE email_messages SET sent_at = now(), last_sent_at = now() WHERE email = %s", (first,))
    scanner = api.get(path(click), headers={"user-agent": BROWSER})  # seconds after delivery: a link scanner
    assert scanner.status_code == 302
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE email_messages SET sent_at = now() - interval '1 hour', "
                     "last_sent_at = now() - interval '1 hour' WHERE email = %s", (first,))
    clicked = api.get(path(click), headers={"user-agent": BROWSER})
    assert clicked.status_code == 302 and clicked.headers["location"] == "https://docs.example.com/whitepaper.pdf"

    stats = api.get(f"/v1/email-campaigns/{campaign['id']}/stats", headers=tenant.headers).json()
    assert stats["sent"] == 49 and stats["messages"]["suppressed"] == 1
    assert stats["opened"] == {"total": 1, "unique": 1}
    assert stats["clicked"] == {"total": 1, "unique": 1} and stats["machine_events_excluded"] == 2
    assert stats["links"] == [{"url": "https://docs.example.com/whitepaper.pdf", "unique": 1, "total": 1}]
    assert stats["rounds"][0]["sent"] == 49 and stats["rounds"][0]["opened"]["unique"] == 1

    page = api.get(path(unsubscribe_url))
    assert page.status_code == 200 and "<form method=\"post\">" in page.text
    done = api.post(path(unsubscribe_url), content=b"List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200
    again = _campaign(api, tenant, [{"email": first}])
    with db.tenant_transaction(tenant.tenant_id) as conn:
        status = conn.execute("SELECT status FROM email_messages WHERE campaign_id = %s", (again["id"],)).fetchone()
    assert status["status"] == "suppressed"


def test_tampered_or_foreign_tokens_get_a_plain_404_never_a_redirect(runtime, api, tenant):
    key = tokens.tracking_key()
    good = tokens.sign(key, "c", tenant.tenant_id, str(uuid.uuid4()), "https://docs.example.com/")
    payload, signature = good.split(".")
    evil_payload = tokens.sign(key, "c", tenant.tenant_id, str(uuid.uuid4()), "https://evil.example.com/").split(".")[0]
    for token in (f"{evil_payload}.{signature}", f"{payload}.{signature[:-2]}xx", "garbage",
                  tokens.sign(b"another key", "c", tenant.tenant_id, "m", "https://evil.example.com/"),
                  tokens.sign(key, "o", tenant.tenant_id, "m")):
        response = api.get(f"/t/c/{token}", follow_redirects=False)
        assert response.status_code == 404 and "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
    assert api.get("/t/o/garbage.gif").status_code == 404
    assert api.post("/u/garbage").status_code == 404


def test_duplicate_events_are_recorded_once(runtime, api, tenant):
    campaign = _campaign(api, tenant, [{"email": f"dup-{uuid.uuid4().hex[:6]}@example.org"}])
    api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    [row] = _wait_sent(tenant, campaign["id"], 1)
    for _ in range(3):  # the same request delivered three times (retries, queue redelivery)
        events.record_event(tenant.tenant_id, str(row["id"]), "open", url=None, user_agent=BROWSER,
                            ip="198.51.100.7", method="GET", dedup_key=f"open:{row['id']}:req-1")
    with db.tenant_transaction(tenant.tenant_id) as conn:
        count = conn.execute("SELECT count(*) AS n FROM email_events WHERE email_message_id = %s",
                             (row["id"],)).fetchone()["n"]
    assert count == 1


def _reminder_rows(tenant, campaign_id: str) -> dict[str, dict]:
    with db.tenant_transaction(tenant.tenant_id) as conn:
        return {r["email"]: r for r in conn.execute(
            "SELECT email, reminder_sent, next_reminder_at FROM email_messages WHERE campaign_id = %s",
            (campaign_id,)).fetchall()}


def _wait_mail(to: str, count: int, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while len(_sent_raw(to)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return _sent_raw(to)


def test_a_reminder_round_goes_only_to_recipients_who_still_qualify(runtime, api, tenant):
    suffix = uuid.uuid4().hex[:6]
    reader, ignorer, leaver, clicker = (f"{who}-{suffix}@example.org" for who in ("reader", "ignorer", "leaver",
                                                                                    "clicker"))
    campaign = _campaign(api, tenant, [{"email": who} for who in (reader, ignorer, leaver, clicker)],
                         reminder_strategy={"rules": [{"when": "not_opened", "after_days": 3},
                                                      {"when": "opened_not_clicked", "after_days": 2}],
                                            "max_reminders": 2})
    api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    rows = {r["email"]: r for r in _wait_sent(tenant, campaign["id"], 4)}
    assert all(r["next_reminder_at"] is not None for r in rows.values())
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE email_messages SET sent_at = now() - interval '4 days', last_sent_at = now() - "
                     "interval '4 days', next_reminder_at = now() - interval '1 minute' WHERE campaign_id = %s",
                     (campaign["id"],))

    def event(who: str, kind: str, agent: str = BROWSER) -> None:
        events.record_event(tenant.tenant_id, str(rows[who]["id"]), kind, url="https://docs.example.com/x"
                            if kind == "click" else None, user_agent=agent, ip="198.51.100.7", method="GET",
                            dedup_key=None)

    event(reader, "open")  # opened, not clicked: gets the "opened_not_clicked" reminder
    event(ignorer, "open", agent="Mozilla/5.0")  # Apple Mail Privacy Protection: not a human open
    event(leaver, "unsubscribe")
    event(clicker, "open")
    event(clicker, "click")
    assert runtime.invoke("EmailRemindersFunction", {})["reminders_queued"] == 2
    assert [len(_wait_mail(who, 2)) for who in (reader, ignorer)] == [2, 2]
    assert len(_sent_raw(leaver)) == 1 and len(_sent_raw(clicker)) == 1
    assert str(_sent_raw(ignorer)[-1]["Subject"]).startswith("【再送】")
    # A retried queue record for the same round never sends it twice.
    assert delivery.deliver(tenant.tenant_id, str(rows[ignorer]["id"]), reminder_round=1) == "reminder already sent"
    assert runtime.invoke("EmailRemindersFunction", {})["reminders_queued"] == 0  # the next round is 2-3 days on
    # the sender commits a round just after SES took its mail: wait for the rows, not only for the mails
    after = wait_until(lambda: _reminder_rows(tenant, campaign["id"]),
                       lambda rows: rows[reader]["reminder_sent"] == rows[ignorer]["reminder_sent"] == 1,
                       timeout=30, what="round 1 recorded")
    with db.tenant_transaction(tenant.tenant_id) as conn:
        assert after[ignorer]["reminder_sent"] == 1 and after[ignorer]["next_reminder_at"] is not None
        assert after[reader]["reminder_sent"] == 1
        assert after[leaver]["reminder_sent"] == 0 and after[leaver]["next_reminder_at"] is None
        assert after[clicker]["reminder_sent"] == 0 and after[clicker]["next_reminder_at"] is None
        conn.execute("UPDATE email_messages SET next_reminder_at = now() - interval '1 minute', last_sent_at = "
                     "now() - interval '2 days' WHERE campaign_id = %s AND next_reminder_at IS NOT NULL",
                     (campaign["id"],))
    event(ignorer, "open")  # the reminder worked: opened in round 1
    event(reader, "click")  # round 1 reminder clicked
    assert runtime.invoke("EmailRemindersFunction", {})["reminders_queued"] == 1  # the ignorer, opened not clicked
    assert len(_wait_mail(ignorer, 3)) == 3 and len(_sent_raw(reader)) == 2
    # the mail reaches SES before the sender's transaction commits its round: wait for the row, not the mail
    last = wait_until(lambda: _reminder_rows(tenant, campaign["id"])[ignorer], lambda row: row["reminder_sent"] == 2,
                      30, "the second reminder recorded")
    assert last["reminder_sent"] == 2 and last["next_reminder_at"] is None  # at most 2 reminders
    stats = api.get(f"/v1/email-campaigns/{campaign['id']}/stats", headers=tenant.headers).json()
    rounds = {r["round"]: r for r in stats["rounds"]}
    assert rounds[0]["sent"] == 4 and rounds[1]["sent"] == 2 and rounds[2]["sent"] == 1
    assert rounds[0]["opened"]["unique"] == 2 and rounds[1]["opened"]["unique"] == 1
    assert rounds[1]["clicked"]["unique"] == 1 and stats["reminders_sent"] == 3
    assert stats["unsubscribed"] == 1 and stats["machine_events_excluded"] == 1


def test_an_open_of_the_first_mail_after_a_reminder_counts_for_the_first_round(runtime, api, tenant):
    reader = f"late-{uuid.uuid4().hex[:6]}@example.org"
    campaign = _campaign(api, tenant, [{"email": reader}],
                         reminder_strategy={"rules": [{"when": "not_opened", "after_days": 3}], "max_reminders": 1})
    api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    _wait_sent(tenant, campaign["id"], 1)
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE email_messages SET sent_at = now() - interval '4 days', last_sent_at = now() - "
                     "interval '4 days', next_reminder_at = now() - interval '1 minute' WHERE campaign_id = %s",
                     (campaign["id"],))
    assert runtime.invoke("EmailRemindersFunction", {})["reminders_queued"] == 1
    first, reminder = _wait_mail(reader, 2)
    with db.tenant_transaction(tenant.tenant_id) as conn:  # an hour later (a click within seconds is a scanner's)
        conn.execute("UPDATE email_messages SET last_sent_at = now() - interval '1 hour' WHERE campaign_id = %s",
                     (campaign["id"],))
    path = lambda url: url.split(runtime.api_url, 1)[-1]  # noqa: E731 (local gateway = public base URL)

    def link(mail, pattern: str) -> str:
        return path(re.search(pattern, mail.get_body(("html",)).get_content()).group(1))

    # The reader finally opens the first mail, then clicks in the reminder: each counts for its own mail.
    assert api.get(link(first, r'src="([^"]+/t/o/[^"]+\.gif)"'), headers={"user-agent": BROWSER}).status_code == 200
    assert api.get(link(reminder, r'href="([^"]+/t/c/[^"]+)"'), headers={"user-agent": BROWSER}).status_code == 302
    rounds = {r["round"]: r for r in api.get(f"/v1/email-campaigns/{campaign['id']}/stats",
                                             headers=tenant.headers).json()["rounds"]}
    assert rounds[0]["opened"]["unique"] == 1 and rounds[0]["clicked"]["unique"] == 0
    assert rounds[1]["opened"]["unique"] == 0 and rounds[1]["clicked"]["unique"] == 1


def test_a_scheduled_campaign_goes_out_when_due_and_a_cancelled_one_never(runtime, api, tenant):
    import datetime as dt

    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    scheduled_to, cancelled_to = (f"{w}-{uuid.uuid4().hex[:6]}@example.org" for w in ("later", "never"))
    scheduled = _campaign(api, tenant, [{"email": scheduled_to}])
    answer = api.post(f"/v1/email-campaigns/{scheduled['id']}/send", headers=tenant.headers, json={"send_at": later})
    assert answer.json()["status"] == "scheduled"
    doomed = _campaign(api, tenant, [{"email": cancelled_to}])
    api.post(f"/v1/email-campaigns/{doomed['id']}/send", headers=tenant.headers, json={"send_at": later})
    assert api.post(f"/v1/email-campaigns/{doomed['id']}/cancel", headers=tenant.headers).json()[
        "cancelled_messages"] == 1
    runtime.invoke("EmailRemindersFunction", {})
    assert not _sent_raw(scheduled_to)  # not due yet
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE email_campaigns SET send_at = now() - interval '1 minute' WHERE id = ANY(%s::uuid[])",
                     ([scheduled["id"], doomed["id"]],))
    assert runtime.invoke("EmailRemindersFunction", {})["scheduled_messages_queued"] == 1
    _wait_sent(tenant, scheduled["id"], 1)
    assert len(_sent_raw(scheduled_to)) == 1 and not _sent_raw(cancelled_to)
    assert api.post(f"/v1/email-campaigns/{doomed['id']}/send", headers=tenant.headers).status_code == 409


def test_when_the_database_is_down_the_pixel_is_served_and_the_event_written_later(runtime, api, tenant, monkeypatch):
    import psycopg

    campaign = _campaign(api, tenant, [{"email": f"offline-{uuid.uuid4().hex[:6]}@example.org"}])
    api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    [row] = _wait_sent(tenant, campaign["id"], 1)
    pixel = f"/t/o/{tokens.sign(tokens.tracking_key(), 'o', tenant.tenant_id, str(row['id']))}.gif"
    real_record = events.record_event

    def database_down(*args, **kwargs):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(events, "record_event", database_down)
    served = api.get(pixel, headers={"user-agent": BROWSER})
    assert served.status_code == 200 and served.headers["content-type"] == "image/gif"
    monkeypatch.setattr(events, "record_event", real_record)  # the database is back
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with db.tenant_transaction(tenant.tenant_id) as conn:
            opens = conn.execute("SELECT count(*) AS n FROM email_events WHERE email_message_id = %s AND type = 'open'",
                                 (row["id"],)).fetchone()["n"]
        if opens:
            break
        time.sleep(0.1)
    assert opens == 1


def test_the_sending_limit_delays_messages_without_losing_any(runtime, api, monkeypatch):
    from funnel.settings import reset_settings

    tenant = new_tenant()
    monkeypatch.setenv("FUNNEL_EMAIL_MAX_PER_DAY", "3")
    monkeypatch.setenv("FUNNEL_EMAIL_THROTTLE_DELAY_SECONDS", "1")
    reset_settings()
    try:
        recipients = [{"email": f"limited{i}-{uuid.uuid4().hex[:6]}@example.org"} for i in range(5)]
        campaign = _campaign(api, tenant, recipients)
        api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
        rows = _wait_sent(tenant, campaign["id"], 5, timeout=4)
        assert sorted(r["status"] for r in rows) == ["queued", "queued", "sent", "sent", "sent"]
        monkeypatch.setenv("FUNNEL_EMAIL_MAX_PER_DAY", "50000")  # a new day, or a higher limit
        reset_settings()
        rows = _wait_sent(tenant, campaign["id"], 5, timeout=30)
        assert [r["status"] for r in rows] == ["sent"] * 5
        assert all(len(_sent_raw(r["email"])) == 1 for r in recipients)
    finally:
        monkeypatch.undo()
        reset_settings()


def test_attachments_become_tracked_expiring_download_links(runtime, api, tenant):
    import httpx

    reader = f"attach-{uuid.uuid4().hex[:6]}@example.org"
    campaign = _campaign(api, tenant, [{"email": reader, "name": "鈴木"}])
    attachment = api.post(f"/v1/email-campaigns/{campaign['id']}/attachments", headers=tenant.headers,
                          json={"filename": "会社案内.pdf", "content_type": "application/pdf"}).json()
    upload = httpx.put(attachment["upload_url"], content=b"%PDF-1.7 brochure",
                       headers={"content-type": "application/pdf"})
    assert upload.status_code == 200
    api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    [row] = _wait_sent(tenant, campaign["id"], 1)
    [mail] = _sent_raw(reader)
    text = mail.get_body(("plain",)).get_content()
    link = re.search(r"会社案内\.pdf: (\S+/t/a/\S+)", text).group(1)
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE email_messages SET sent_at = now() - interval '1 hour', "
                     "last_sent_at = now() - interval '1 hour' WHERE id = %s", (row["id"],))
    download = api.get(link.split(runtime.api_url, 1)[-1], headers={"user-agent": BROWSER})
    assert download.status_code == 302
    assert httpx.get(download.headers["location"]).content == b"%PDF-1.7 brochure"
    stats = api.get(f"/v1/email-campaigns/{campaign['id']}/stats", headers=tenant.headers).json()
    assert stats["links"][0]["url"] == "attachment:会社案内.pdf"
    expired = tokens.sign(tokens.tracking_key(), "a", tenant.tenant_id, str(row["id"]),
                          f"{attachment['id']}:{int(time.time()) - 1}")
    assert api.get(f"/t/a/{expired}").status_code == 410
    forged = tokens.sign(b"not the key", "a", tenant.tenant_id, str(row["id"]), f"{attachment['id']}:9999999999")
    assert api.get(f"/t/a/{forged}").status_code == 404


def test_bad_campaign_input_is_a_422_problem_and_creates_nothing(runtime, api):
    tenant = new_tenant()
    valid = {"name": "資料送付", "subject": "{{company_name}} 様", "from_name": "山田 太郎",
             "sender_identity": "株式会社サンプル商事 東京都千代田区", "body": "{{name}} 様",
             "recipients": [{"email": "reader@example.org"}]}
    for change in ({"subject": "{{title}} のご案内"},  # not a template variable
                   {"recipients": [{"email": "not an address"}]},
                   {"recipients": []},
                   {"sender_identity": ""},  # the Act on Specified Electronic Mail wants a sender
                   {"reminder_strategy": {"rules": []}},
                   {"reminder_strategy": {"rules": [{"when": "bounced", "after_days": 3}]}},
                   {"reminder_strategy": {"rules": [{"when": "not_opened", "after_days": 0}]}},
                   {"smtp_profile_id": str(uuid.uuid4())},
                   {"surprise": True}):
        refused = api.post("/v1/email-campaigns", headers=tenant.headers, json={**valid, **change})
        assert refused.status_code == 422, (change, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    with db.tenant_transaction(tenant.tenant_id) as conn:
        assert conn.execute("SELECT (SELECT count(*) FROM email_campaigns) + (SELECT count(*) FROM email_messages) "
                            "AS n").fetchone()["n"] == 0

    campaign = _campaign(api, tenant, [{"email": f"later-{uuid.uuid4().hex[:6]}@example.org"}])
    for send_at in ("2030-01-01T09:00:00", "next tuesday"):  # a time without its offset is ambiguous
        refused = api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers,
                           json={"send_at": send_at})
        assert refused.status_code == 422, refused.text
    assert api.get(f"/v1/email-campaigns/{campaign['id']}", headers=tenant.headers).json()["status"] == "draft"


def test_when_the_queue_is_unreachable_a_send_changes_nothing_and_can_be_tried_again(runtime, api, tenant, monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    class UnreachableQueue:
        def send_message(self, **kwargs):
            raise EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com/")

    readers = [f"retry{i}-{uuid.uuid4().hex[:6]}@example.org" for i in range(2)]
    campaign = _campaign(api, tenant, [{"email": r} for r in readers])
    monkeypatch.setattr(sending, "_queue", UnreachableQueue)
    refused = api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
    assert api.get(f"/v1/email-campaigns/{campaign['id']}", headers=tenant.headers).json()["status"] == "draft"
    monkeypatch.undo()  # the queue is back: the same request now goes through

    sent = api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    assert sent.status_code == 200 and sent.json()["queued"] == 2, sent.text
    assert [r["status"] for r in _wait_sent(tenant, campaign["id"], 2)] == ["sent", "sent"]
    assert all(len(_sent_raw(r)) == 1 for r in readers)
    assert api.get(f"/v1/email-campaigns/{campaign['id']}", headers=tenant.headers).json()["status"] == "sent"


def test_a_campaign_whose_every_message_ses_refuses_ends_failed_with_the_reason_and_its_owner_is_told(
        runtime, api, monkeypatch):
    from funnel.settings import reset_settings

    tenant = new_tenant()
    readers = [f"refused{i}-{uuid.uuid4().hex[:6]}@example.org" for i in range(2)]
    monkeypatch.setenv("FUNNEL_SES_FROM_ADDRESS", "sales@unverified.example.net")  # SES refuses this sender
    reset_settings()
    try:
        campaign = _campaign(api, tenant, [{"email": r} for r in readers])
    finally:
        monkeypatch.undo()
        reset_settings()
    api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    deadline = time.monotonic() + 30
    while (ended := api.get(f"/v1/email-campaigns/{campaign['id']}", headers=tenant.headers).json())[
            "status"] == "sending":
        assert time.monotonic() < deadline, "the campaign stayed sending"
        time.sleep(0.1)
    assert ended["status"] == "failed", ended
    assert ended["error"].startswith("no message was sent, 2 failed: SES MessageRejected: "), ended
    assert ended["error"].endswith("(2 messages)") and ended["updated_at"] > ended["created_at"]
    failed = api.get(f"/v1/email-campaigns/{campaign['id']}/messages", headers=tenant.headers,
                     params={"status": "failed"}).json()["items"]
    assert sorted(m["email"] for m in failed) == sorted(readers)
    assert all("MessageRejected" in m["error"] for m in failed), failed
    assert not any(_sent_raw(r) for r in readers)
    stats = api.get(f"/v1/email-campaigns/{campaign['id']}/stats", headers=tenant.headers).json()
    assert stats["sent"] == 0 and stats["messages"] == {"failed": 2}
    listed = api.get("/v1/email-campaigns", headers=tenant.headers, params={"status": "failed"}).json()["items"]
    assert [c["id"] for c in listed] == [campaign["id"]]
    inbox = api.get("/v1/notifications", headers=tenant.headers, params={"category": "email.campaign"}).json()
    assert [n["title"] for n in inbox["items"]] == ["Campaign \"資料送付\" failed: no message was sent"]
    assert inbox["items"][0]["message"].startswith(ended["error"])
    assert api.post(f"/v1/email-campaigns/{campaign['id']}/cancel", headers=tenant.headers).status_code == 409

    assert api.post("/v1/do-not-contact", headers=tenant.headers,
                    json={"kind": "email", "value": readers[0], "reason": "manual"}).status_code == 201
    everyone_suppressed = _campaign(api, tenant, [{"email": readers[0]}])
    answer = api.post(f"/v1/email-campaigns/{everyone_suppressed['id']}/send", headers=tenant.headers).json()
    assert answer["queued"] == 0  # nothing to send: the campaign is complete at once
    campaign = api.get(f"/v1/email-campaigns/{everyone_suppressed['id']}", headers=tenant.headers).json()
    assert campaign["status"] == "sent" and campaign["error"] is None  # none was to be sent, so none failed


def test_campaigns_and_their_messages_are_listed_a_page_at_a_time_and_only_to_their_tenant(runtime, api):
    tenant, other = new_tenant(), new_tenant()
    readers = sorted(f"page{i}-{uuid.uuid4().hex[:6]}@example.org" for i in range(5))
    first = _campaign(api, tenant, [{"email": r} for r in readers])
    second = _campaign(api, tenant, [{"email": readers[0]}])
    api.post(f"/v1/email-campaigns/{second['id']}/cancel", headers=tenant.headers)

    listed = api.get("/v1/email-campaigns", headers=tenant.headers).json()
    assert [c["id"] for c in listed["items"]] == [second["id"], first["id"]] and listed["next_cursor"] is None
    drafts = api.get("/v1/email-campaigns", headers=tenant.headers, params={"status": "draft"}).json()["items"]
    assert [c["id"] for c in drafts] == [first["id"]]
    assert api.get("/v1/email-campaigns", headers=other.headers).json()["items"] == []

    seen, cursor = [], None
    while True:
        page = api.get(f"/v1/email-campaigns/{first['id']}/messages", headers=tenant.headers,
                       params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [m["email"] for m in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == readers
    cancelled = api.get(f"/v1/email-campaigns/{second['id']}/messages", headers=tenant.headers,
                        params={"status": "cancelled"}).json()["items"]
    assert [m["email"] for m in cancelled] == [readers[0]]
    for params in ({"cursor": "not-a-cursor"}, {"status": "lost"}, {"limit": 0}):
        assert api.get(f"/v1/email-campaigns/{first['id']}/messages", headers=tenant.headers,
                       params=params).status_code == 422
    assert api.get(f"/v1/email-campaigns/{first['id']}/messages", headers=other.headers).status_code == 404
