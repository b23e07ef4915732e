"""A 10,000-recipient campaign completes through the local runtime: created in one request, queued,
sent by the email sender from the queue (one message per recipient), stats add up."""
from __future__ import annotations

import time
import uuid

import pytest

from funnel import db
from funnel.settings import reset_settings
from tests.support.tenants import new_tenant

RECIPIENTS = int(__import__("os").environ.get("EMAIL_BULK_N", "10000"))


@pytest.mark.slow
def test_a_10000_recipient_campaign_completes(runtime, api, monkeypatch):
    from moto.ses.models import ses_backends

    tenant = new_tenant()
    monkeypatch.setenv("FUNNEL_EMAIL_MAX_PER_SECOND", "100000")  # the limit has its own test; this one is size
    reset_settings()
    try:
        suffix = uuid.uuid4().hex[:6]
        recipients = [{"email": f"bulk{i}-{suffix}@example.org", "name": f"読者{i}", "company": f"会社{i}"}
                      for i in range(RECIPIENTS)]
        recipients.append(dict(recipients[0]))  # a duplicate address gets one message
        created = api.post("/v1/email-campaigns", headers=tenant.headers, timeout=120, json={
            "name": "大量送付", "subject": "{{company_name}} 様", "from_name": "山田 太郎",
            "sender_identity": "株式会社サンプル商事 東京都千代田区千代田1-1", "body": "{{name}} 様 https://example.com/a",
            "recipients": recipients})
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        print(f"\ncreated in {created.elapsed.total_seconds():.1f} s")
        started = time.monotonic()
        sent = api.post(f"/v1/email-campaigns/{campaign_id}/send", headers=tenant.headers, timeout=120)
        assert sent.json()["queued"] == RECIPIENTS
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            with db.tenant_transaction(tenant.tenant_id) as conn:
                status = conn.execute("SELECT status FROM email_campaigns WHERE id = %s", (campaign_id,)).fetchone()
            if status["status"] == "sent":
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        stats = api.get(f"/v1/email-campaigns/{campaign_id}/stats", headers=tenant.headers).json()
        assert status["status"] == "sent", f"{stats['messages']} after {elapsed:.0f} s"
        assert stats["sent"] == RECIPIENTS and stats["messages"] == {"sent": RECIPIENTS}
        backend = ses_backends["123456789012"]["us-east-1"]
        delivered = sum(1 for m in backend.sent_messages
                        if hasattr(m, "raw_data") and any(d.endswith(f"-{suffix}@example.org") for d in m.destinations))
        assert delivered == RECIPIENTS  # exactly one message per recipient
        print(f"\n{RECIPIENTS:,}-recipient campaign sent in {elapsed:.0f} s")
    finally:
        monkeypatch.undo()
        reset_settings()
