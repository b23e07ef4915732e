"""One identity across the product through the local runtime (issue #16, item 5): an e-mail campaign that names a
DRM campaign is sent (API, email queue, sender, moto SES) to a developer's address; link checkers and scanners hit
the tracked link and make nothing; the recipient clicks (gateway, tracking function), the touch crosses the
community touches queue (CommunityTouchesFunction) and the click appears on the developer's timeline in the 360
profile, pointing at the e-mail campaign's resource, which names the DRM campaign."""
from __future__ import annotations

import email
import email.policy
import re
import time
import uuid

from funnel import db
from tests.support.tenants import new_pooled_tenant

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"


def _mail_to(address: str, timeout: float = 60) -> email.message.EmailMessage:
    from moto.ses.models import ses_backends

    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in ses_backends["123456789012"]["us-east-1"].sent_messages
                 if hasattr(m, "raw_data") and address in m.destinations]
        if found or time.monotonic() > deadline:
            assert found, f"no mail to {address}"
            return email.message_from_string(found[0].raw_data, policy=email.policy.default)
        time.sleep(0.1)


def _profile_when(api, tenant, developer_id: str, condition, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        profile = api.get(f"/v1/developers/{developer_id}", headers=tenant.headers).json()
        if condition(profile) or time.monotonic() > deadline:
            return profile
        time.sleep(0.2)


def test_an_email_click_appears_on_the_developers_timeline(runtime, api):
    tenant = new_pooled_tenant()
    address = f"hanako-{uuid.uuid4().hex[:6]}@acme-{uuid.uuid4().hex[:6]}.co.jp"
    developer = api.post("/v1/developers", headers=tenant.headers, json={"display_name": "Hanako", "accounts": [
        {"provider": "github", "external_user_id": f"gh-{uuid.uuid4().hex[:8]}", "email": address}]})
    assert developer.status_code == 201, developer.text
    developer_id = developer.json()["developer_id"]
    drm = api.post("/v1/campaigns", headers=tenant.headers, json={"name": "Spring launch"}).json()
    campaign = api.post("/v1/email-campaigns", headers=tenant.headers, json={
        "name": "資料送付", "subject": "資料のご送付", "from_name": "山田 太郎",
        "sender_identity": "株式会社サンプル商事 東京都千代田区千代田1-1 03-1234-5678",
        "body": "{{name}} 様\n資料はこちらです: https://docs.example.com/whitepaper.pdf",
        "recipients": [{"email": address, "name": "花子"}]}).json()
    link = api.put(f"/v1/campaigns/{drm['campaign_id']}/email-campaigns/{campaign['id']}", headers=tenant.headers)
    assert link.status_code == 200, link.text
    assert api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers).json()["queued"] == 1
    html = _mail_to(address).get_body(("html",)).get_content()
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1).split(runtime.api_url, 1)[-1]

    assert api.head(click, headers={"user-agent": BROWSER}).status_code == 302  # a link checker's HEAD
    assert api.get(click, headers={"user-agent": "curl/8.4.0"}).status_code == 302  # a scanner
    with db.tenant_transaction(tenant.tenant_id) as conn:  # the mail went out an hour ago: a person's pace
        conn.execute("UPDATE email_messages SET sent_at = now() - interval '1 hour', "
                     "last_sent_at = now() - interval '1 hour' WHERE campaign_id = %s", (campaign["id"],))
    clicked = api.get(click, headers={"user-agent": BROWSER})
    assert clicked.status_code == 302 and clicked.headers["location"] == "https://docs.example.com/whitepaper.pdf"

    profile = _profile_when(api, tenant, developer_id, lambda p: p["email_clicks"])
    [activity] = profile["email_clicks"]
    assert (activity["action"], activity["source"], activity["developer_id"]) == ("click", "email", developer_id)
    assert activity["metadata"]["email_campaign_id"] == campaign["id"]
    assert activity["metadata"]["url"] == "https://docs.example.com/whitepaper.pdf"
    assert activity["resource_id"] == link.json()["resource_id"]  # the e-mail campaign's, naming the DRM campaign
    assert activity["activity_id"] in {a["activity_id"] for a in profile["recent_activities"]}
    assert profile["stats"]["by_action"] == [{"action": "click", "count": 1, "last_at": activity["occurred_at"]}]

    # the first-touch funnel reads the stats rollup (every 5 minutes): run one now, as an admin may
    assert api.post("/v1/stats/rollup", headers=tenant.headers, json={}).status_code == 200
    funnel = api.get("/v1/adoption/first-touch", headers=tenant.headers).json()
    assert {s["source"]: s["touched"] for s in funnel["sources"]}["email"] == 1
