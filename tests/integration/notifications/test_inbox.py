"""Notifications in the tenant DB and the inbox API: seed 004's rules, isolation, bulk, expiry."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest

from funnel import db
from funnel.notifications import service
from funnel.platform import users
from funnel.platform.errors import ValidationFailed
from tests.support.billing import set_subscription
from tests.support.tenants import PASSWORD, new_tenant

PROBLEM = "application/problem+json"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def tenant(runtime):
    handle = new_tenant()
    set_subscription(handle, plan="enterprise")  # an announcement to 1,000 users needs more seats than free's
    return handle


def _member(api, tenant) -> dict:
    email = f"m-{uuid.uuid4().hex[:8]}@example.com"
    user = users.create_user(tenant.tenant_id, email=email, password=PASSWORD, role="member", display_name=None,
                             actor="test")
    token = api.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
    return {"id": str(user["id"]), "headers": {"Authorization": f"Bearer {token}"}}


def test_a_notification_appears_in_the_inbox_and_read_state_follows(api, tenant):
    member = _member(api, tenant)
    [row] = service.notify(tenant.tenant_id, recipient_user_ids=[member["id"]], category="content.run_completed",
                           title="Articles published", body="3 articles are live.", priority="HIGH",
                           related_entity_type="run", related_entity_id=str(uuid.uuid4()))
    inbox = api.get("/v1/notifications", headers=member["headers"]).json()["items"]
    assert [n["id"] for n in inbox] == [str(row["id"])]
    assert inbox[0]["delivery_status"] == "DELIVERED" and inbox[0]["read_status"] == "UNREAD"
    assert api.get("/v1/notifications/unread-count", headers=member["headers"]).json() == {"unread": 1, "capped": False}
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
    read = api.post(f"/v1/notifications/{row['id']}/read", headers={**member["headers"], "User-Agent": iphone}).json()
    assert read["read_status"] == "READ" and _at(read["read_at"]) >= _at(read["sent_at"])
    assert read["device_type"] == "MOBILE" and read["user_agent"] == iphone and read["ip_address"]
    assert api.get("/v1/notifications", headers=member["headers"], params={"read_status": "UNREAD"}).json()[
        "items"] == []
    api.post(f"/v1/notifications/{row['id']}/unread", headers=member["headers"])
    assert api.get("/v1/notifications/unread-count", headers=member["headers"]).json() == {"unread": 1, "capped": False}
    assert api.post("/v1/notifications/read-all", headers=member["headers"]).json() == {"marked_read": 1}
    archived = api.post(f"/v1/notifications/{row['id']}/archive", headers=member["headers"]).json()
    assert _at(archived["archived_at"]) >= _at(archived["read_at"])
    assert api.get("/v1/notifications", headers=member["headers"]).json()["items"] == []
    unread = api.post(f"/v1/notifications/{row['id']}/unread", headers=member["headers"])
    assert unread.status_code == 409


def test_filters_by_category_and_priority(api, tenant):
    member = _member(api, tenant)
    service.notify(tenant.tenant_id, recipient_user_ids=[member["id"]], category="billing", title="Invoice",
                   priority="LOW")
    service.notify(tenant.tenant_id, recipient_user_ids=[member["id"]], category="content.run_failed", title="Oops",
                   priority="URGENT")
    by_category = api.get("/v1/notifications", headers=member["headers"], params={"category": "billing"}).json()
    by_priority = api.get("/v1/notifications", headers=member["headers"], params={"priority": "URGENT"}).json()
    assert [n["title"] for n in by_category["items"]] == ["Invoice"]
    assert [n["title"] for n in by_priority["items"]] == ["Oops"]
    assert api.get("/v1/notifications", headers=member["headers"], params={"priority": "SOON"}).status_code == 422


def test_read_at_before_sent_at_is_rejected_and_changes_nothing(api, tenant):
    member = _member(api, tenant)
    [row] = service.notify(tenant.tenant_id, recipient_user_ids=[member["id"]], category="system", title="Hello")
    earlier = (row["sent_at"] - timedelta(minutes=5)).isoformat()
    refused = api.post(f"/v1/notifications/{row['id']}/read", headers=member["headers"], json={"read_at": earlier})
    assert refused.status_code == 409 and refused.headers["content-type"] == PROBLEM
    assert "chk_read_after_sent" in refused.json()["detail"]
    with db.tenant_transaction(tenant.tenant_id) as conn:
        assert conn.execute("SELECT read_status, read_at FROM notifications WHERE id = %s",
                            (row["id"],)).fetchone() == {"read_status": "UNREAD", "read_at": None}
    ahead = (datetime.now(UTC) + timedelta(hours=2)).isoformat()  # a client's clock ahead: counts as now
    read = api.post(f"/v1/notifications/{row['id']}/read", headers=member["headers"], json={"read_at": ahead}).json()
    assert read["read_status"] == "READ"
    assert datetime.fromisoformat(read["read_at"]) < datetime.fromisoformat(ahead) - timedelta(hours=1)


def test_seed_rules_hold_in_the_database(tenant):
    [row] = service.notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="system", title="Rules")
    violations = [
        ("UPDATE notifications SET retry_count = max_retry_count + 1 WHERE id = %s", psycopg.errors.CheckViolation),
        ("UPDATE notifications SET read_status = 'READ', read_at = now(), archived_at = now() - interval '1 hour' "
         "WHERE id = %s", psycopg.errors.CheckViolation),
        ("UPDATE notifications SET read_status = 'READ' WHERE id = %s", psycopg.errors.CheckViolation),
        ("INSERT INTO notifications (notification_id, recipient_id, title) SELECT notification_id, recipient_id, "
         "'copy' FROM notifications WHERE id = %s", psycopg.errors.UniqueViolation),
    ]
    for sql, error in violations:
        with pytest.raises(error), db.tenant_transaction(tenant.tenant_id) as conn:
            conn.execute(sql, (row["id"],))


def test_a_user_never_sees_or_touches_another_users_notification(api, tenant):
    owner_of, intruder = _member(api, tenant), _member(api, tenant)
    [row] = service.notify(tenant.tenant_id, recipient_user_ids=[owner_of["id"]], category="system", title="Private")
    for method, path in (("POST", "read"), ("POST", "unread"), ("POST", "archive"), ("DELETE", "")):
        url = f"/v1/notifications/{row['id']}" + (f"/{path}" if path else "")
        response = api.request(method, url, headers=intruder["headers"])
        assert response.status_code == 404, (path, response.text)
    assert api.get("/v1/notifications", headers=intruder["headers"]).json()["items"] == []
    other_tenant = new_tenant()
    assert api.post(f"/v1/notifications/{row['id']}/read", headers=other_tenant.headers).status_code == 404
    assert api.get("/v1/notifications", headers=owner_of["headers"]).json()["items"][0]["read_status"] == "UNREAD"


def test_logical_delete_hides_but_keeps_history(api, tenant):
    member = _member(api, tenant)
    [row] = service.notify(tenant.tenant_id, recipient_user_ids=[member["id"]], category="system", title="Gone")
    assert api.delete(f"/v1/notifications/{row['id']}", headers=member["headers"]).status_code == 204
    assert api.get("/v1/notifications", headers=member["headers"]).json()["items"] == []
    history = api.get("/v1/admin/notifications", headers=tenant.headers, params={"recipient_id": member["id"]}).json()
    assert [n["id"] for n in history["items"]] == [str(row["id"])]
    assert api.delete(f"/v1/notifications/{row['id']}", headers=member["headers"]).status_code == 404
    with db.tenant_transaction(tenant.tenant_id) as conn:
        audited = conn.execute("SELECT user_id FROM audit_logs WHERE action = 'notification.delete' "
                               "AND resource_id = %s", (str(row["id"]),)).fetchall()
    assert [str(a["user_id"]) for a in audited] == [member["id"]]


def test_expired_notifications_disappear_and_the_cleanup_archives_them(runtime, api, tenant):
    member = _member(api, tenant)
    [old_news] = service.notify(tenant.tenant_id, recipient_user_ids=[member["id"]], category="system",
                                title="Old news", expiry_date=date.today() - timedelta(days=1))
    assert api.post(f"/v1/notifications/{old_news['id']}/read", headers=member["headers"]).status_code == 200
    service.notify(tenant.tenant_id, recipient_user_ids=[member["id"]], category="system", title="Fresh",
                   expiry_date=date.today() + timedelta(days=1))
    service.notify(tenant.tenant_id, recipient_user_ids=[member["id"]], category="system", title="Until today",
                   expiry_date=datetime.combine(date.today(), time(23, 0)))  # a datetime counts by its day
    titles = [n["title"] for n in api.get("/v1/notifications", headers=member["headers"]).json()["items"]]
    assert titles == ["Until today", "Fresh"]
    result = runtime.invoke("NotificationsCleanupFunction", {})
    assert result["archived"] >= 1
    with db.tenant_transaction(tenant.tenant_id) as conn:
        old = conn.execute("SELECT archived_at, read_at FROM notifications WHERE title = 'Old news'").fetchone()
    assert old["archived_at"] is not None and old["archived_at"] >= old["read_at"]


def test_bulk_send_to_1000_recipients_shares_one_batch_id(tenant):
    with db.tenant_transaction(tenant.tenant_id) as conn:
        ids = [str(r["id"]) for r in conn.execute(
            "INSERT INTO users (email, role) SELECT 'bulk-' || g || '-' || %s || '@example.com', 'viewer' "
            "FROM generate_series(1, 1000) AS g RETURNING id", (uuid.uuid4().hex[:6],)).fetchall()]
    rows = service.notify(tenant.tenant_id, recipient_user_ids=ids, category="announcement",
                          template_id="user_invited", template_variables={"workspace": "Acme", "inviter": "<Ann>"},
                          personalization={"language": "ja", "time_zone": "Asia/Tokyo"})
    assert len(rows) == 1000 and len({r["batch_id"] for r in rows}) == 1 and rows[0]["batch_id"] is not None
    assert all(r["is_bulk_notification"] for r in rows)
    assert rows[0]["title"] == "Acmeへようこそ" and "<Ann>" in rows[0]["message"]
    assert rows[0]["personalization_data"] == {"language": "ja", "time_zone": "Asia/Tokyo"}


def test_bad_sends_are_refused_and_write_nothing(api, tenant):
    before = len(api.get("/v1/admin/notifications", headers=tenant.headers, params={"limit": 200}).json()["items"])
    cases = [
        {"recipient_ids": [], "title": "x"},
        {"recipient_ids": [str(uuid.uuid4())], "title": "stranger"},
        {"recipient_ids": [tenant.owner_id], "title": "x", "channels": ["PIGEON"]},
        {"recipient_ids": [tenant.owner_id], "template_id": "user_invited", "template_variables": {"workspace": "A"}},
        {"recipient_ids": [tenant.owner_id]},
        {"recipient_ids": [tenant.owner_id], "title": "x", "action_url": "javascript:alert(1)"},
    ]
    for body in cases:
        response = api.post("/v1/notifications", headers=tenant.headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == PROBLEM
    after = len(api.get("/v1/admin/notifications", headers=tenant.headers, params={"limit": 200}).json()["items"])
    assert after == before


def test_values_that_do_not_fit_are_refused_by_notify(tenant):
    for bad in ({"related_entity_id": "x" * 51}, {"action_label": "x" * 51}, {"template_id": None, "title": "t",
                                                                             "recipient_user_ids": ["not-a-uuid"]}):
        arguments = {"recipient_user_ids": [tenant.owner_id], "category": "system", "title": "Too long", **bad}
        with pytest.raises(ValidationFailed):
            service.notify(tenant.tenant_id, **arguments)


def test_notify_inside_a_callers_transaction_commits_with_it(tenant):
    with pytest.raises(RuntimeError), db.tenant_transaction(tenant.tenant_id) as conn:
        service.notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="system", title="Rolled back",
                       channels=("IN_APP", "EMAIL"), conn=conn)
        raise RuntimeError("the caller's work failed")
    with db.tenant_transaction(tenant.tenant_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM notifications WHERE title = 'Rolled back'").fetchone()["n"] == 0


def test_channels_are_set_per_workspace_or_user_and_never_shown(api, tenant):
    member, other = _member(api, tenant), _member(api, tenant)
    first = api.put("/v1/notification-channels/WEBHOOK", headers=tenant.headers,
                    json={"url": "http://127.0.0.1:9/hook"})
    second = api.put("/v1/notification-channels/WEBHOOK", headers=tenant.headers,
                     json={"url": "http://127.0.0.1:9/other"})
    assert first.status_code == second.status_code == 200, second.text
    assert first.json()["signing_secret"] != second.json()["signing_secret"]  # replaced, new secret shown once
    own = api.put("/v1/notification-channels/SLACK", headers=member["headers"],
                  json={"url": "http://127.0.0.1:9/slack", "user_id": member["id"]})
    assert own.status_code == 200 and "signing_secret" not in own.json()
    listed = api.get("/v1/notification-channels", headers=tenant.headers).json()["items"]
    assert len([c for c in listed if c["kind"] == "WEBHOOK" and c["user_id"] is None]) == 1
    assert all("url" not in c and "url_encrypted" not in c and "signing_secret_encrypted" not in c for c in listed)
    assert [c["id"] for c in api.get("/v1/notification-channels", headers=member["headers"]).json()["items"]] == [
        own.json()["id"]]
    refusals = [
        (member["headers"], "SLACK", {"url": "http://127.0.0.1:9/x"}, 403),  # a member cannot set the workspace's
        (member["headers"], "SLACK", {"url": "http://127.0.0.1:9/x", "user_id": other["id"]}, 403),
        (tenant.headers, "SLACK", {"url": "http://169.254.169.254/latest/meta-data"}, 422),  # SSRF guard
        (tenant.headers, "SLACK", {"url": "http://127.0.0.1:9/x", "user_id": str(uuid.uuid4())}, 422),
        (tenant.headers, "PIGEON", {"url": "http://127.0.0.1:9/x"}, 422),
    ]
    for headers, kind, body, status in refusals:
        response = api.put(f"/v1/notification-channels/{kind}", headers=headers, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == PROBLEM
    assert api.delete(f"/v1/notification-channels/{first.json()['id']}", headers=other["headers"]).status_code == 404
    assert api.delete(f"/v1/notification-channels/{own.json()['id']}", headers=member["headers"]).status_code == 204
    assert api.delete(f"/v1/notification-channels/{own.json()['id']}", headers=tenant.headers).status_code == 404


def test_the_inbox_pages_with_a_cursor_newest_first(api, tenant):
    member = _member(api, tenant)
    for n in range(5):
        service.notify(tenant.tenant_id, recipient_user_ids=[member["id"]], category="system", title=f"n{n}")
    titles, cursor = [], None
    while True:
        page = api.get("/v1/notifications", headers=member["headers"],
                       params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        titles += [n["title"] for n in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert titles == ["n4", "n3", "n2", "n1", "n0"]
    assert api.get("/v1/notifications", headers=member["headers"], params={"cursor": "garbage"}).status_code == 422


def test_an_admin_announcement_to_1000_users_through_the_api_is_one_batch(api, tenant):
    with db.tenant_transaction(tenant.tenant_id) as conn:
        ids = [str(r["id"]) for r in conn.execute(
            "INSERT INTO users (email, role) SELECT 'api-bulk-' || g || '-' || %s || '@example.com', 'viewer' "
            "FROM generate_series(1, 1000) AS g RETURNING id", (uuid.uuid4().hex[:6],)).fetchall()]
    response = api.post("/v1/notifications", headers=tenant.headers, json={
        "recipient_ids": ids, "category": "announcement", "title": "Maintenance tonight", "priority": "HIGH"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["count"] == 1000 and body["batch_id"] and len(body["items"]) == 100
    with db.tenant_transaction(tenant.tenant_id) as conn:
        batches = conn.execute("SELECT batch_id, count(*) AS n, bool_and(is_bulk_notification) AS bulk "
                               "FROM notifications WHERE title = 'Maintenance tonight' GROUP BY batch_id").fetchall()
    assert batches == [{"batch_id": uuid.UUID(body["batch_id"]), "n": 1000, "bulk": True}]
    member = _member(api, tenant)
    assert api.post("/v1/notifications", headers=member["headers"],
                    json={"recipient_ids": ids[:1], "title": "not an admin"}).status_code == 403
