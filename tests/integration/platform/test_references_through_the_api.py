"""Every route that takes an id in its body, with two pooled tenants in one database: a neighbour's id
answers exactly like an id that exists nowhere (404 where the route looks it up, otherwise 422 naming the
field) and writes nothing; in a silo database an unknown id is a 422 naming the field, never a 500."""
from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from funnel import db
from tests.support.gateway_client import gateway_client
from tests.support.tenants import TenantHandle, new_tenant

PROBLEM = "application/problem+json"
SENDER = {"company": "Funnel", "last_name": "山田", "first_name": "太郎", "email": "yamada@example.com"}
CAMPAIGN = {"name": "c", "subject": "hello", "body": "hello", "from_name": "Funnel",
            "sender_identity": "Funnel Inc., Tokyo"}


@pytest.fixture(scope="module")
def pool(runtime) -> str:
    return f"pool_refs_{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def mine(pool) -> TenantHandle:
    return new_tenant(pool=pool)


@pytest.fixture(scope="module")
def neighbour(pool) -> TenantHandle:
    return new_tenant(pool=pool)


def _created(response: httpx.Response) -> dict:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _records(api: httpx.Client, tenant: TenantHandle) -> dict:
    """One of each record a body can name, written through the API."""
    suffix = uuid.uuid4().hex[:8]
    headers = tenant.headers
    contact = _created(api.post("/v1/contacts", headers=headers, json={
        "company_name": f"Co {suffix}", "url": f"http://127.0.0.1:9/{suffix}",
        "email": f"info-{suffix}@example.com"}))
    template = _created(api.post("/v1/templates", headers=headers, json={"title": "intro", "body": "hello"}))
    task = _created(api.post("/v1/tasks", headers=headers, json={
        "name": "t", "mode": "review", "message": "hello", "contact_ids": [contact["id"]], "sender": SENDER}))
    smtp = _created(api.post("/v1/smtp-profiles", headers=headers, json={
        "name": "s", "host": "127.0.0.1", "port": 2525, "from_address": f"from-{suffix}@example.com"}))
    site = _created(api.post("/v1/sites", headers=headers, json={
        "slug": f"blog-{suffix}", "wp_admin_url": "http://127.0.0.1:9/"}))
    product = _created(api.post("/v1/products", headers=headers, json={
        "url": f"http://127.0.0.1:9/p-{suffix}", "site_id": site["id"]}))
    return {"contact": contact["id"], "template": template["id"], "task": task["id"], "smtp_profile": smtp["id"],
            "site": site["id"], "product": product["id"], "user": tenant.owner_id}


@pytest.fixture(scope="module")
def theirs(api_module, neighbour) -> dict:
    return _records(api_module, neighbour)


@pytest.fixture(scope="module")
def ours(api_module, mine) -> dict:
    return _records(api_module, mine)


@pytest.fixture(scope="module")
def api_module(runtime, contract_check):
    with gateway_client(runtime.api_url, timeout=30, event_hooks={"response": [contract_check]}) as client:
        yield client


def _counts(tenant: TenantHandle) -> dict[str, int]:
    tables = ("email_campaigns", "email_messages", "notifications", "notification_channels", "tasks",
              "task_targets", "products", "schedules")
    with db.tenant_transaction(tenant.tenant_id) as conn:
        return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in tables}


def _answer(response: httpx.Response) -> tuple[int, dict]:
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    body = response.json()
    body.pop("instance", None)
    return response.status_code, body


# (what, the kind of record named, send(api, tenant, ours, id), the answer's status, the field a 422 names)
Send = Callable[[httpx.Client, TenantHandle, dict, str], httpx.Response]
CASES: list[tuple[str, str, Send, int, str | None]] = [
    ("campaign recipient's contact_id", "contact",
     lambda api, t, o, ref: api.post("/v1/email-campaigns", headers=t.headers, json={
         **CAMPAIGN, "recipients": [{"email": "x@example.com", "contact_id": ref}]}), 422, "contact_id"),
    ("campaign contact_ids", "contact",
     lambda api, t, o, ref: api.post("/v1/email-campaigns", headers=t.headers, json={
         **CAMPAIGN, "contact_ids": [ref]}), 422, "contact_ids"),
    ("campaign task_id", "task",
     lambda api, t, o, ref: api.post("/v1/email-campaigns", headers=t.headers, json={
         **CAMPAIGN, "task_id": ref}), 422, "task_id"),
    ("campaign smtp_profile_id", "smtp_profile",
     lambda api, t, o, ref: api.post("/v1/email-campaigns", headers=t.headers, json={
         **CAMPAIGN, "recipients": [{"email": "x@example.com"}], "smtp_profile_id": ref}), 422, "smtp_profile_id"),
    ("notification recipient_ids", "user",
     lambda api, t, o, ref: api.post("/v1/notifications", headers=t.headers, json={
         "recipient_ids": [t.owner_id, ref], "title": "hello"}), 422, "recipient_ids"),
    ("channel user_id", "user",
     lambda api, t, o, ref: api.put("/v1/notification-channels/SLACK", headers=t.headers, json={
         "url": "http://127.0.0.1:9/slack", "user_id": ref}), 422, "user_id"),
    ("task contact_ids", "contact",
     lambda api, t, o, ref: api.post("/v1/tasks", headers=t.headers, json={
         "name": "t", "message": "hello", "contact_ids": [o["contact"], ref], "sender": SENDER}), 422, "contact_ids"),
    ("task template_id", "template",
     lambda api, t, o, ref: api.post("/v1/tasks", headers=t.headers, json={
         "name": "t", "template_id": ref, "contact_ids": [o["contact"]], "sender": SENDER}), 404, None),
    ("new product's site_id", "site",
     lambda api, t, o, ref: api.post("/v1/products", headers=t.headers, json={
         "url": "http://127.0.0.1:9/new", "site_id": ref}), 404, None),
    ("product's new site_id", "site",
     lambda api, t, o, ref: api.patch(f"/v1/products/{o['product']}", headers=t.headers, json={
         "site_id": ref}), 404, None),
    ("new schedule's site_id", "site",
     lambda api, t, o, ref: api.post("/v1/schedules", headers=t.headers, json={
         "site_id": ref, "product_id": o["product"], "cron_expression": "0 9 * * 1"}), 404, None),
    ("new schedule's product_id", "product",
     lambda api, t, o, ref: api.post("/v1/schedules", headers=t.headers, json={
         "site_id": o["site"], "product_id": ref, "cron_expression": "0 9 * * 1"}), 404, None),
]


@pytest.mark.parametrize(("what", "kind", "send", "status", "field"), CASES, ids=[c[0] for c in CASES])
def test_a_neighbours_id_answers_like_an_unknown_id_and_writes_nothing(api_module, mine, ours, theirs, what, kind,
                                                                         send, status, field):
    before = _counts(mine)
    with_neighbours = _answer(send(api_module, mine, ours, theirs[kind]))
    with_unknown = _answer(send(api_module, mine, ours, str(uuid.uuid4())))
    assert with_neighbours == with_unknown
    assert with_neighbours[0] == status, with_neighbours
    if status == 422:
        assert [e["loc"] for e in with_neighbours[1]["errors"]] == [["body", field]]
    assert _counts(mine) == before
    with db.tenant_transaction(mine.tenant_id) as conn:
        assert conn.execute("SELECT product_id FROM article_clusters LIMIT 0").fetchall() == []
        assert conn.execute("SELECT site_id FROM products WHERE id = %s", (ours["product"],)).fetchone()[
            "site_id"] is not None


def test_a_schedule_patch_naming_a_neighbours_site_or_product_is_a_404(api_module, mine, ours, theirs):
    schedule = _created(api_module.post("/v1/schedules", headers=mine.headers, json={
        "site_id": ours["site"], "product_id": ours["product"], "cron_expression": "0 9 * * 1"}))
    for key, kind in (("site_id", "site"), ("product_id", "product")):
        answers = [_answer(api_module.patch(f"/v1/schedules/{schedule['id']}", headers=mine.headers,
                                            json={key: ref})) for ref in (theirs[kind], str(uuid.uuid4()))]
        assert answers[0] == answers[1] and answers[0][0] == 404
    stored = api_module.get(f"/v1/schedules/{schedule['id']}", headers=mine.headers).json()
    assert (stored["site_id"], stored["product_id"]) == (ours["site"], ours["product"])


def test_a_neighbour_deleting_its_contact_leaves_this_tenants_rows_untouched(api_module, mine, ours, neighbour):
    suffix = uuid.uuid4().hex[:8]
    their_contact = _created(api_module.post("/v1/contacts", headers=neighbour.headers, json={
        "company_name": f"Theirs {suffix}", "email": f"theirs-{suffix}@example.com"}))
    attached = api_module.post("/v1/email-campaigns", headers=mine.headers, json={
        **CAMPAIGN, "recipients": [{"email": f"a-{suffix}@example.com", "contact_id": ours["contact"]},
                                   {"email": f"b-{suffix}@example.com", "contact_id": their_contact["id"]}]})
    assert attached.status_code == 422, attached.text
    campaign = _created(api_module.post("/v1/email-campaigns", headers=mine.headers, json={
        **CAMPAIGN, "recipients": [{"email": f"a-{suffix}@example.com", "contact_id": ours["contact"]}]}))
    assert api_module.delete(f"/v1/contacts/{their_contact['id']}", headers=neighbour.headers).status_code == 204
    with db.tenant_transaction(mine.tenant_id) as conn:
        rows = conn.execute("SELECT contact_id::text AS contact_id FROM email_messages WHERE campaign_id = %s",
                            (campaign["id"],)).fetchall()
        assert [r["contact_id"] for r in rows] == [ours["contact"]]
        assert conn.execute("SELECT count(*) AS n FROM email_messages WHERE contact_id IS NULL").fetchone()["n"] == 0


def test_an_unknown_contact_id_in_a_silo_tenant_is_a_422_naming_the_field(api_module):
    silo = new_tenant()
    response = api_module.post("/v1/email-campaigns", headers=silo.headers, json={
        **CAMPAIGN, "recipients": [{"email": "x@example.com", "contact_id": str(uuid.uuid4())}]})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "contact_id"]]
    with db.tenant_transaction(silo.tenant_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM email_campaigns").fetchone()["n"] == 0
