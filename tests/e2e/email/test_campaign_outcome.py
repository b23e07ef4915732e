"""No campaign stays `sending` for ever, against the local runtime's PostgreSQL: the 5-minute schedule
(EmailRemindersFunction) fails the messages of a campaign that no sender has taken up for
`completion.STALLED_CAMPAIGN_SECONDS` (queue records lost, or left in the DLQ) with the reason
`no progress (lost in the queue)`, and the campaign ends `failed` or `partial` with its error, its owner told; a
campaign whose messages a sender took up lately is left alone, and a sender's attempt is recorded even when it
fails (a transient error, rolled back) or has to wait (the sending limit)."""
from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from funnel import db
from funnel.email import completion, delivery, transport
from tests.support.tenants import new_tenant

CAMPAIGN = {"name": "資料送付", "subject": "資料のご送付", "from_name": "山田 太郎", "body": "{{name}} 様",
            "sender_identity": "株式会社サンプル商事 東京都千代田区千代田1-1 03-1234-5678"}
STALE = f"{completion.STALLED_CAMPAIGN_SECONDS + 600} seconds"  # older than the sweep's bound
RECENT = f"{completion.STALLED_CAMPAIGN_SECONDS - 600} seconds"  # within it


@pytest.fixture(scope="module")
def tenant(runtime):
    return new_tenant()


def _addresses(*who: str) -> list[str]:
    suffix = uuid.uuid4().hex[:6]
    return [f"{w}-{suffix}@example.org" for w in who]


def _sending_since(api, tenant, addresses: list[str], age: str, name: str = "資料送付") -> dict:
    """A campaign moved to 'sending' ``age`` ago whose fan-out record never reached the sender (none is queued):
    what a lost or dead-lettered record leaves behind."""
    created = api.post("/v1/email-campaigns", headers=tenant.headers,
                       json={**CAMPAIGN, "name": name, "recipients": [{"email": a} for a in addresses]})
    assert created.status_code == 201, created.text
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE email_campaigns SET status = 'sending', updated_at = now() - %s::interval "
                     "WHERE id = %s", (age, created.json()["id"]))
    return created.json()


def _age_attempts(tenant, campaign: dict, age: str) -> None:
    """As if a sender last took the campaign's messages up ``age`` ago."""
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE email_messages SET attempted_at = now() - %s::interval WHERE campaign_id = %s",
                     (age, campaign["id"]))


def _messages(api, tenant, campaign: dict) -> dict[str, dict]:
    return {m["email"]: m for m in api.get(f"/v1/email-campaigns/{campaign['id']}/messages",
                                           headers=tenant.headers).json()["items"]}


def _campaign_now(api, tenant, campaign: dict) -> dict:
    return api.get(f"/v1/email-campaigns/{campaign['id']}", headers=tenant.headers).json()


def test_the_schedule_fails_the_messages_no_sender_takes_up_and_the_campaign_ends(runtime, api, tenant):
    lost = _sending_since(api, tenant, _addresses("lost-a", "lost-b"), STALE, name="届かない")
    went, stuck = _addresses("went", "stuck")
    partly = _sending_since(api, tenant, [went, stuck], STALE, name="半分")
    with db.tenant_transaction(tenant.tenant_id) as conn:  # one went out long ago; the other's record was lost
        conn.execute("UPDATE email_messages SET status = 'sent', sent_at = now() - %s::interval "
                     "WHERE campaign_id = %s AND email = %s", (STALE, partly["id"], went))
    _age_attempts(tenant, partly, STALE)
    [waiting] = _addresses("waiting")
    moving = _sending_since(api, tenant, [waiting], STALE, name="進行中")
    _age_attempts(tenant, moving, RECENT)  # a sender took it up lately (it failed, or waits for its slot)

    assert runtime.invoke("EmailRemindersFunction", {})["stuck_jobs_failed"] >= 2

    ended = _campaign_now(api, tenant, lost)
    assert ended["status"] == "failed", ended
    assert ended["error"] == "no message was sent, 2 failed: no progress (lost in the queue) (2 messages)"
    assert {(m["status"], m["error"]) for m in _messages(api, tenant, lost).values()} == {
        ("failed", "no progress (lost in the queue)")}
    ended = _campaign_now(api, tenant, partly)
    assert ended["status"] == "partial", ended
    assert ended["error"] == "1 of 2 messages failed: no progress (lost in the queue)"
    messages = _messages(api, tenant, partly)
    assert messages[went]["status"] == "sent" and messages[stuck]["status"] == "failed"
    assert _campaign_now(api, tenant, moving)["status"] == "sending"
    assert _messages(api, tenant, moving)[waiting]["status"] == "queued"

    inbox = api.get("/v1/notifications", headers=tenant.headers, params={"category": "email.campaign"}).json()
    titles = {n["title"] for n in inbox["items"]}
    assert {"Campaign \"届かない\" failed: no message was sent", "Campaign \"半分\": 1 of 2 messages failed"} <= titles
    assert not any("進行中" in t for t in titles)


def test_a_senders_attempt_counts_as_progress_even_when_it_fails_or_must_wait(runtime, api, tenant, monkeypatch):
    from funnel.settings import reset_settings

    [reader] = _addresses("paused")
    campaign = _sending_since(api, tenant, [reader], STALE, name="一時停止")
    message_id = _messages(api, tenant, campaign)[reader]["id"]

    class Paused:  # account-wide: retried by the queue, and in the DLQ after its last retry
        def send_email(self, **request):
            raise ClientError({"Error": {"Code": "AccountSendingPausedException", "Message": "paused"}}, "SendEmail")

    monkeypatch.setattr(transport, "_ses_client", Paused)
    with pytest.raises(ClientError):
        delivery.deliver(tenant.tenant_id, message_id)
    monkeypatch.undo()
    assert completion.fail_stalled_campaigns(tenant.tenant_id) == 0  # taken up just now: the send was rolled back,
    assert _messages(api, tenant, campaign)[reader]["status"] == "queued"  # the attempt was not

    _age_attempts(tenant, campaign, STALE)
    monkeypatch.setenv("FUNNEL_EMAIL_MAX_PER_DAY", "0")  # the tenant's limit: the message waits its turn
    reset_settings()
    try:
        with pytest.raises(transport.EmailThrottled):
            delivery.deliver(tenant.tenant_id, message_id)
    finally:
        monkeypatch.undo()
        reset_settings()
    assert completion.fail_stalled_campaigns(tenant.tenant_id) == 0

    _age_attempts(tenant, campaign, STALE)  # then nothing took it up any more
    assert completion.fail_stalled_campaigns(tenant.tenant_id) == 1
    ended = _campaign_now(api, tenant, campaign)
    assert (ended["status"], ended["error"]) == ("failed", "no message was sent, 1 failed: no progress (lost in the "
                                                           "queue)")


def test_the_migration_gives_failed_messages_a_reason_and_its_downgrade_restores_the_statuses_before(runtime):
    import psycopg

    from funnel.platform import migrations, tenants

    scratch = f"scratch_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(scratch)
    url = db.admin_url(scratch)
    try:
        migrations.run("tenant", url, "upgrade", "heads")
        migrations.run("tenant", url, "downgrade", "t0004_email")  # a database as the code before left it
        with psycopg.connect(url, autocommit=True) as conn:  # the owner role: rows as the code before wrote them
            campaign = conn.execute(
                "INSERT INTO email_campaigns (tenant_id, name, subject, body, from_name, from_address, "
                "sender_identity, status) VALUES ('a', 'n', 's', 'b', 'f', 'f@x.jp', 'f@x.jp', 'sent') "
                "RETURNING id").fetchone()[0]
            conn.execute("INSERT INTO email_messages (tenant_id, campaign_id, email, status) "
                         "VALUES ('a', %s, 'x@example.com', 'failed')", (campaign,))
        migrations.run("tenant", url, "upgrade", "t0005_email")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT error FROM email_messages").fetchone()[0] == "failed (no reason was recorded)"
            with pytest.raises(psycopg.errors.CheckViolation):  # from now on a failed message says why
                conn.execute("INSERT INTO email_messages (tenant_id, campaign_id, email, status) "
                             "VALUES ('a', %s, 'y@example.com', 'failed')", (campaign,))
            conn.execute("UPDATE email_campaigns SET status = 'partial', error = '1 of 1 messages failed: x'")
        migrations.run("tenant", url, "downgrade", "t0004_email")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT status FROM email_campaigns").fetchone()[0] == "sent"
            columns = {r[0] for r in conn.execute(
                "SELECT table_name || '.' || column_name FROM information_schema.columns "
                "WHERE table_name IN ('email_campaigns', 'email_messages')")}
            assert not {"email_campaigns.error", "email_campaigns.updated_at", "email_messages.attempted_at"} & columns
            with pytest.raises(psycopg.errors.CheckViolation):  # the statuses before
                conn.execute("UPDATE email_campaigns SET status = 'partial'")
    finally:
        tenants.drop_database(scratch)
