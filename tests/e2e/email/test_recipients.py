"""Campaign recipients from outreach contacts and from a send task (contacts with an e-mail address)."""
from __future__ import annotations

from funnel import db
from tests.support.tenants import new_tenant

CAMPAIGN = {"name": "資料送付", "subject": "{{company_name}} 様", "from_name": "山田 太郎",
            "sender_identity": "株式会社サンプル商事 東京都千代田区千代田1-1", "body": "{{name}} 様 資料です"}


def _contact(api, tenant, company: str, email: str | None) -> str:
    response = api.post("/v1/contacts", headers=tenant.headers, json={
        "company_name": company, "contact_person": "佐藤",
        **({"email": email} if email else {})})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _recipients(tenant, campaign_id: str) -> list[dict]:
    with db.tenant_transaction(tenant.tenant_id) as conn:
        return conn.execute("SELECT contact_id::text, email::text, name, company FROM email_messages "
                            "WHERE campaign_id = %s ORDER BY email", (campaign_id,)).fetchall()


def test_recipients_come_from_contacts_and_from_a_send_task(runtime, api):
    tenant = new_tenant()
    alpha = _contact(api, tenant, "アルファ株式会社", "sato@alpha.example.org")
    beta = _contact(api, tenant, "ベータ株式会社", "sato@beta.example.org")
    no_mail = _contact(api, tenant, "ガンマ株式会社", None)

    by_contacts = api.post("/v1/email-campaigns", headers=tenant.headers,
                           json={**CAMPAIGN, "contact_ids": [alpha, no_mail],
                                 "recipients": [{"email": "extra@example.org", "name": "鈴木"}]})
    assert by_contacts.status_code == 201, by_contacts.text
    assert _recipients(tenant, by_contacts.json()["id"]) == [
        {"contact_id": None, "email": "extra@example.org", "name": "鈴木", "company": None},
        {"contact_id": alpha, "email": "sato@alpha.example.org", "name": "佐藤", "company": "アルファ株式会社"}]

    with db.tenant_transaction(tenant.tenant_id) as conn:  # a send task over the three contacts
        task_id = str(conn.execute("INSERT INTO tasks (name) VALUES ('Q4') RETURNING id").fetchone()["id"])
        for contact in (alpha, beta, no_mail):
            conn.execute("INSERT INTO task_targets (task_id, contact_id, target_url, domain) "
                         "VALUES (%s, %s, %s, %s)", (task_id, contact, f"https://{contact}.example.com/",
                                                     f"{contact}.example.com"))
    by_task = api.post("/v1/email-campaigns", headers=tenant.headers, json={**CAMPAIGN, "task_id": task_id})
    assert by_task.status_code == 201, by_task.text
    assert str(by_task.json()["task_id"]) == task_id
    assert [r["email"] for r in _recipients(tenant, by_task.json()["id"])] == ["sato@alpha.example.org",
                                                                                "sato@beta.example.org"]

    other = new_tenant()  # another tenant's contacts and tasks are unknown here
    for body in ({"contact_ids": [alpha]}, {"task_id": task_id}, {}):
        refused = api.post("/v1/email-campaigns", headers=other.headers, json={**CAMPAIGN, **body})
        assert refused.status_code == 422, refused.text
