"""One identity across the product against real PostgreSQL (issue #16, item 5): an organization and the outreach
companies of its domain, e-mail clicks made activities of the developer with that address (consent, duplicates,
company mailboxes), form submissions made activities of the organization, e-mail campaigns and outreach tasks
naming a DRM campaign (attribution follows), the 360 profile, the first-touch funnel, and two pooled tenants that
never link across. Touches are recorded through ``crossarea.record`` as the queue consumer records them."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from funnel import db
from funnel.community import crossarea
from funnel.community.identity import AccountIn
from funnel.community.touches import EmailClick, FormSubmission
from tests.integration.community.conftest import COMMUNITY_POOL
from tests.support.community_stats import rollup
from tests.support.tenants import new_tenant

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def domain() -> str:
    return f"acme-{uuid.uuid4().hex[:8]}.co.jp"


@pytest.fixture(scope="module")
def neighbour(runtime, domain):
    """Another tenant of the same pool with an organization and a contact at the same domain."""
    tenant = new_tenant(pool=COMMUNITY_POOL)
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("INSERT INTO organizations (name, domain_primary) VALUES ('Acme (neighbour)', %s)", (domain,))
        conn.execute("INSERT INTO contacts (company_name, default_url, domain) VALUES ('Neighbour Acme', %s, %s)",
                     (f"https://{domain}/", domain))
    return tenant


@pytest.fixture(scope="module")
def organization(runtime, owner_headers, domain) -> dict:
    answer = httpx.post(f"{runtime.api_url}/v1/organizations", headers=owner_headers, timeout=30,
                        json={"name": f"Acme {domain}", "domain_primary": f"https://www.{domain.upper()}/about"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["domain_primary"] == domain
    return answer.json()


def contact(api, headers, **body) -> dict:
    answer = api.post("/v1/contacts", headers=headers, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def click(tenant_id: str, email: str, *, touch_id: str | None = None, email_campaign_id: uuid.UUID | None = None,
          url: str = "https://docs.example.com/guide", at: datetime = NOW, name: str | None = None) -> EmailClick:
    return EmailClick(tenant_id=tenant_id, touch_id=touch_id or f"click:{uuid.uuid4()}", occurred_at=at, email=email,
                      name=name, email_campaign_id=email_campaign_id or uuid.uuid4(),
                      email_message_id=uuid.uuid4(), url=url)


def submission(tenant_id: str, domain: str, *, task_id: uuid.UUID | None = None, target_id: uuid.UUID | None = None,
               at: datetime = NOW, urls: list[str] | None = None) -> FormSubmission:
    target = target_id or uuid.uuid4()
    return FormSubmission(tenant_id=tenant_id, touch_id=f"target:{target}", occurred_at=at, domain=domain,
                          company_name="株式会社アクメ", task_id=task_id or uuid.uuid4(), target_id=target,
                          target_url=f"https://{domain}/contact", urls=urls or [])


def activities_where(tenant_conn, clause: str, *params) -> list[dict]:
    with tenant_conn() as conn:
        return conn.execute("SELECT activity_id, developer_id, org_id, account_id, resource_id, action, source, "
                            f"metadata, occurred_at FROM activities WHERE {clause} ORDER BY occurred_at",
                            params).fetchall()


# ---------------------------------------------------------------- organization <-> outreach companies

def test_an_organization_shows_the_outreach_companies_of_its_domain_and_their_status(
        api, owner_headers, community_tenant, tenant_conn, organization, domain, neighbour):
    site = contact(api, owner_headers, company_name="株式会社アクメ", url=f"https://www.{domain}/contact")
    mailbox = contact(api, owner_headers, company_name="Acme Labs", url=f"https://labs-{domain}",
                      email=f"Sales@{domain.upper()}")
    contact(api, owner_headers, company_name="Someone on Gmail", url=f"https://other-{domain}", email="acme@gmail.com")
    contact(api, owner_headers, company_name="Unrelated", url=f"https://unrelated-{domain}")
    with tenant_conn() as conn:  # a send task reached the first company, as the browser worker leaves it
        task = conn.execute("INSERT INTO tasks (name, status) VALUES ('Spring outreach', 'completed') "
                            "RETURNING id").fetchone()
        conn.execute("INSERT INTO task_targets (task_id, contact_id, target_url, domain, status, last_attempt_at) "
                     "VALUES (%s, %s, %s, %s, 'submitted', now())", (task["id"], site["id"], site["default_url"],
                                                                     site["domain"]))
        conn.execute("INSERT INTO sent_history (domain, contact_id, task_id) VALUES (%s, %s, %s)",
                     (site["domain"], site["id"], task["id"]))
    answer = api.get(f"/v1/organizations/{organization['org_id']}/outreach", headers=owner_headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["domain"] == domain
    companies = {c["contact_id"]: c for c in body["companies"]}
    assert set(companies) == {site["id"], mailbox["id"]}  # not the gmail address, not the other domain, no neighbour
    assert companies[site["id"]]["linked_by"] == "domain"
    assert companies[site["id"]]["outreach_status"] == "submitted" and companies[site["id"]]["submissions"] == 1
    assert companies[site["id"]]["task_id"] == str(task["id"]) and companies[site["id"]]["last_sent_at"]
    assert companies[mailbox["id"]]["linked_by"] == "email_domain"
    assert companies[mailbox["id"]]["outreach_status"] == "not_contacted"

    free = api.post("/v1/organizations", headers=owner_headers, json={"name": f"Gmail users {domain}",
                                                                      "domain_primary": "gmail.com"}).json()
    assert api.get(f"/v1/organizations/{free['org_id']}/outreach", headers=owner_headers).json()["companies"] == []
    foreign = api.get(f"/v1/organizations/{organization['org_id']}/outreach", headers=neighbour.headers)
    assert foreign.status_code == 404


# ---------------------------------------------------------------- e-mail clicks

def test_an_email_click_is_one_activity_of_the_developer_with_that_address(community_tenant, tenant_conn, resolve,
                                                                         domain):
    [dev] = resolve(AccountIn(provider="github", external_user_id=f"gh-{uuid.uuid4().hex[:8]}",
                              email=f"taro.yamada@{domain}", display_name="Taro Yamada"))
    touch = click(community_tenant.tenant_id, f"Taro.Yamada@{domain.upper()}", name="山田 太郎")
    assert crossarea.record(touch) == "inserted"
    assert crossarea.record(touch) == "duplicate"  # the queue redelivered it
    [row] = activities_where(tenant_conn, "dedup_key = %s", f"email:click:{touch.touch_id}")
    assert (row["developer_id"], row["action"], row["source"]) == (dev.developer_id, "click", "email")
    assert row["metadata"]["email_campaign_id"] == str(touch.email_campaign_id)
    with tenant_conn() as conn:
        account = conn.execute("SELECT provider, external_user_id, developer_id FROM accounts WHERE account_id = %s",
                               (row["account_id"],)).fetchone()
        resource = conn.execute("SELECT category, external_id FROM resources WHERE resource_id = %s",
                                (row["resource_id"],)).fetchone()
    assert account == {"provider": "email", "external_user_id": f"taro.yamada@{domain}",
                       "developer_id": dev.developer_id}
    assert resource == {"category": "email_campaign", "external_id": str(touch.email_campaign_id)}


def test_a_recipient_first_met_by_email_is_the_developer_who_signs_up_later(community_tenant, tenant_conn, resolve,
                                                                           domain):
    address = f"hanako-{uuid.uuid4().hex[:6]}@{domain}"
    touch = click(community_tenant.tenant_id, address, at=NOW - timedelta(days=3))
    assert crossarea.record(touch) == "inserted"
    [clicked] = activities_where(tenant_conn, "dedup_key = %s", f"email:click:{touch.touch_id}")
    [signed_up] = resolve(AccountIn(provider="github", external_user_id=f"gh-{uuid.uuid4().hex[:8]}", email=address))
    assert signed_up.developer_id == clicked["developer_id"]  # the certain e-mail identifier


def test_no_tracking_activity_and_no_account_for_a_developer_without_consent(api, owner_headers, community_tenant,
                                                                            tenant_conn, domain):
    address = f"private-{uuid.uuid4().hex[:6]}@{domain}"
    created = api.post("/v1/developers", headers=owner_headers, json={"consent_analytics": False, "accounts": [
        {"provider": "github", "external_user_id": f"gh-{uuid.uuid4().hex[:8]}", "email": address}]})
    assert created.status_code == 201, created.text
    touch = click(community_tenant.tenant_id, address)
    assert crossarea.record(touch) == "skipped_consent"
    assert activities_where(tenant_conn, "dedup_key = %s", f"email:click:{touch.touch_id}") == []
    with tenant_conn() as conn:
        assert conn.execute("SELECT count(*) AS n FROM accounts WHERE provider = 'email' AND external_user_id = %s",
                            (address,)).fetchone()["n"] == 0


def test_a_click_from_a_company_mailbox_is_the_organizations(community_tenant, tenant_conn, organization, domain):
    touch = click(community_tenant.tenant_id, f"info@{domain}")
    assert crossarea.record(touch) == "inserted"
    [row] = activities_where(tenant_conn, "dedup_key = %s", f"email:click:{touch.touch_id}")
    assert row["developer_id"] is None and row["org_id"] == uuid.UUID(organization["org_id"])
    assert crossarea.record(click(community_tenant.tenant_id, "info@nobody-here.example")) == "no_organization"
    assert crossarea.record(click(community_tenant.tenant_id, "not an address")) == "not_an_address"


# ---------------------------------------------------------------- form submissions

def test_a_form_submission_is_an_activity_of_the_organization_at_the_companys_domain(
        community_tenant, tenant_conn, organization, domain, neighbour):
    touch = submission(community_tenant.tenant_id, f"WWW.{domain}")
    assert crossarea.record(touch) == "inserted"
    assert crossarea.record(touch) == "duplicate"
    [row] = activities_where(tenant_conn, "dedup_key = %s", f"outreach:form:{touch.touch_id}")
    assert (row["action"], row["source"], row["developer_id"]) == ("form_submission", "outreach", None)
    assert row["org_id"] == uuid.UUID(organization["org_id"]) and row["metadata"]["task_id"] == str(touch.task_id)
    assert crossarea.record(submission(community_tenant.tenant_id, f"nobody-{domain}")) == "no_organization"
    assert crossarea.record(submission(community_tenant.tenant_id, "gmail.com")) == "no_organization"
    with db.tenant_transaction(neighbour.tenant_id) as conn:  # the neighbour's organization of the same domain
        assert conn.execute("SELECT count(*) AS n FROM activities").fetchone()["n"] == 0


# ---------------------------------------------------------------- channels naming DRM campaigns

def test_an_email_campaign_names_a_drm_campaign_and_its_clicks_are_attributed_to_it(
        api, owner_headers, community_tenant, tenant_conn, resolve, domain, neighbour):
    drm = api.post("/v1/campaigns", headers=owner_headers, json={"name": f"Launch {uuid.uuid4().hex[:6]}"}).json()
    email_campaign = api.post("/v1/email-campaigns", headers=owner_headers, json={
        "name": "資料送付", "subject": "資料", "body": "https://docs.example.com", "from_name": "Sales",
        "sender_identity": "Funnel Inc. Tokyo", "recipients": [{"email": f"jiro@{domain}"}]}).json()
    link = api.put(f"/v1/campaigns/{drm['campaign_id']}/email-campaigns/{email_campaign['id']}", headers=owner_headers)
    assert link.status_code == 200, link.text
    assert link.json()["category"] == "email_campaign" and link.json()["title"] == "資料送付"
    listed = api.get(f"/v1/campaigns/{drm['campaign_id']}/channels", headers=owner_headers).json()["items"]
    assert [c["external_id"] for c in listed] == [email_campaign["id"]]
    shortlink = api.post("/v1/shortlinks", headers=owner_headers,
                         json={"target_url": "https://example.com/docs"}).json()

    [dev] = resolve(AccountIn(provider="github", external_user_id=f"gh-{uuid.uuid4().hex[:8]}",
                              email=f"jiro@{domain}"))
    touch = click(community_tenant.tenant_id, f"jiro@{domain}", email_campaign_id=uuid.UUID(email_campaign["id"]),
                  url=shortlink["short_url"], at=NOW - timedelta(hours=2))
    assert crossarea.record(touch) == "inserted"
    [row] = activities_where(tenant_conn, "dedup_key = %s", f"email:click:{touch.touch_id}")
    assert row["resource_id"] == uuid.UUID(link.json()["resource_id"])
    assert row["metadata"]["via_shortlink_id"] == shortlink["shortlink_id"]
    with tenant_conn() as conn:
        conn.execute("INSERT INTO activities (developer_id, action, occurred_at, source, dedup_key) "
                     "VALUES (%s, 'signup', %s, 'product', %s)", (dev.developer_id, NOW - timedelta(hours=1),
                                                                  f"test:{uuid.uuid4()}"))
    window = {"from": (NOW - timedelta(days=1)).isoformat(), "to": (NOW + timedelta(days=1)).isoformat()}
    assert api.post("/v1/campaigns/attribution/recompute", headers=owner_headers,
                    json=window).status_code == 200
    roi = api.get(f"/v1/campaigns/{drm['campaign_id']}/roi", headers=owner_headers).json()
    assert float(roi["conversions"]) == 1.0  # the e-mail's DRM campaign; the shortlink itself names none

    assert api.delete(f"/v1/campaigns/{drm['campaign_id']}/email-campaigns/{email_campaign['id']}",
                      headers=owner_headers).status_code == 204
    assert api.get(f"/v1/campaigns/{drm['campaign_id']}/channels", headers=owner_headers).json()["items"] == []
    # another tenant's campaign or e-mail campaign does not exist here
    assert api.put(f"/v1/campaigns/{drm['campaign_id']}/email-campaigns/{email_campaign['id']}",
                   headers=neighbour.headers).status_code == 404
    unknown = api.put(f"/v1/campaigns/{drm['campaign_id']}/email-campaigns/{uuid.uuid4()}", headers=owner_headers)
    assert unknown.status_code == 404


def test_an_outreach_task_names_a_drm_campaign_and_its_submissions_point_at_it(
        api, owner_headers, community_tenant, tenant_conn, organization, domain):
    drm = api.post("/v1/campaigns", headers=owner_headers, json={"name": f"Outbound {uuid.uuid4().hex[:6]}"}).json()
    with tenant_conn() as conn:
        task = conn.execute("INSERT INTO tasks (name) VALUES ('Autumn outreach') RETURNING id").fetchone()
    link = api.put(f"/v1/campaigns/{drm['campaign_id']}/outreach-tasks/{task['id']}", headers=owner_headers)
    assert link.status_code == 200 and link.json()["campaign_id"] == drm["campaign_id"]
    touch = submission(community_tenant.tenant_id, domain, task_id=task["id"])
    assert crossarea.record(touch) == "inserted"
    [row] = activities_where(tenant_conn, "dedup_key = %s", f"outreach:form:{touch.touch_id}")
    assert row["resource_id"] == uuid.UUID(link.json()["resource_id"])


# ---------------------------------------------------------------- the 360 profile

def test_the_360_profile_shows_email_clicks_and_the_organizations_outreach(api, owner_headers, community_tenant,
                                                                         organization, domain):
    created = api.post("/v1/developers", headers=owner_headers, json={
        "org_id": organization["org_id"], "accounts": [
            {"provider": "github", "external_user_id": f"gh-{uuid.uuid4().hex[:8]}", "email": f"saburo@{domain}"}]})
    assert created.status_code == 201, created.text
    assert crossarea.record(click(community_tenant.tenant_id, f"saburo@{domain}")) == "inserted"
    assert crossarea.record(submission(community_tenant.tenant_id, domain)) == "inserted"
    profile = api.get(f"/v1/developers/{created.json()['developer_id']}", headers=owner_headers).json()
    assert [(a["action"], a["source"]) for a in profile["email_clicks"]] == [("click", "email")]
    assert ("click", "email") in {(a["action"], a["source"]) for a in profile["recent_activities"]}
    assert "form_submission" in {a["action"] for a in profile["organization_touches"]}
    outreach = api.get(f"/v1/organizations/{organization['org_id']}/outreach", headers=owner_headers).json()
    assert profile["organization_companies"] == outreach["companies"]


# ---------------------------------------------------------------- the first-touch funnel

def test_the_first_touch_funnel_counts_adopters_per_source(runtime, api):
    tenant = new_tenant(pool=COMMUNITY_POOL)  # a tenant of its own: exact counts
    org_domain = f"beta-{uuid.uuid4().hex[:8]}.example"
    day = NOW - timedelta(days=10)
    first_click = click(tenant.tenant_id, f"a@{org_domain}", at=day)
    assert crossarea.record(first_click) == "inserted"  # a person's address: a new developer, first touched by e-mail
    with db.tenant_transaction(tenant.tenant_id) as conn:
        org = conn.execute("INSERT INTO organizations (name, domain_primary) VALUES ('Beta', %s) RETURNING org_id",
                           (org_domain,)).fetchone()["org_id"]
        by_email = conn.execute("SELECT developer_id FROM activities WHERE source = 'email'").fetchone()
        devs = [by_email["developer_id"]] + [
            conn.execute("INSERT INTO developers (org_id) VALUES (%s) RETURNING developer_id",
                         (org if n == 1 else None,)).fetchone()["developer_id"] for n in range(1, 5)]
    assert crossarea.record(submission(tenant.tenant_id, org_domain, at=day)) == "inserted"  # devs[1]'s organization
    rows = [(devs[0], "signup", "product", 2), (devs[1], "star", "github", 1), (devs[1], "install", "product", 3),
            (devs[2], "click", "shortlink", 1), (devs[3], "star", "github", 1), (devs[3], "signup", "product", 2),
            (devs[4], "view", "ga", 1)]
    with db.tenant_transaction(tenant.tenant_id) as conn:
        for developer_id, action, source, days in rows:
            conn.execute("INSERT INTO activities (developer_id, action, occurred_at, source, dedup_key) "
                         "VALUES (%s, %s, %s, %s, %s)", (developer_id, action, day + timedelta(days=days), source,
                                                         f"test:{uuid.uuid4()}"))
    rollup(tenant.tenant_id)  # the funnel reads developer_stats: as of the last rollup
    answer = api.get("/v1/adoption/first-touch", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "signup" in body["adoption_actions"] and "install" in body["adoption_actions"]
    counts = {s["source"]: (s["touched"], s["adopted"]) for s in body["sources"]}
    assert counts == {"email": (1, 1), "outreach": (1, 1), "shortlink": (1, 0), "other": (2, 1)}
    assert (body["touched"], body["adopted"]) == (5, 3)
    later = api.get("/v1/adoption/first-touch", headers=tenant.headers,
                    params={"touched_from": (day + timedelta(hours=12)).isoformat()}).json()
    assert {s["source"]: s["touched"] for s in later["sources"]} == {"email": 0, "outreach": 0, "shortlink": 1,
                                                                    "other": 2}
    bad = api.get("/v1/adoption/first-touch", headers=tenant.headers,
                  params={"touched_from": NOW.isoformat(), "touched_to": (NOW - timedelta(days=1)).isoformat()})
    assert bad.status_code == 422
