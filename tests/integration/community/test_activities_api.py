"""Activities through the API against real PostgreSQL (a pooled tenant): one activity, batches with duplicates,
replays, a bad item (422 naming it, nothing written), consent, the list with its filters and cursor, and a
neighbour tenant in the same pool that can neither see nor reference this tenant's rows."""
from __future__ import annotations

import uuid

import pytest

from tests.integration.community.conftest import COMMUNITY_POOL, PROBLEM
from tests.support.tenants import new_tenant, row_count


def account(user: str, **more) -> dict:
    return {"provider": "github", "external_user_id": user, "handle": f"user{user}", **more}


def activity(user: str, action: str = "star", **more) -> dict:
    return {"account": account(user), "action": action, "source": "github",
            "occurred_at": "2026-01-05T10:00:00+09:00", **more}


def counts(tenant) -> tuple[int, int, int]:
    return row_count(tenant, "activities"), row_count(tenant, "accounts"), row_count(tenant, "resources")


@pytest.fixture(scope="module")
def neighbour(runtime):
    return new_tenant(pool=COMMUNITY_POOL)


def test_one_activity_creates_its_account_developer_and_resource(api, community_tenant, owner_headers):
    user = uuid.uuid4().hex[:8]
    answer = api.post("/v1/activities", headers=owner_headers, json=activity(
        user, resource={"category": "repo", "external_id": "acme/sdk", "title": "Acme SDK", "group_key": "sdk"},
        metadata={"ref": "readme"}, source_ref=f"delivery-{user}"))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "inserted"
    stored = body["activity"]
    assert stored["developer_id"] and stored["account_id"] and stored["resource_id"]
    assert (stored["category"], stored["group_key"], stored["metadata"]) == ("repo", "sdk", {"ref": "readme"})
    assert stored["dedup_key"] == f"github:delivery-{user}"
    assert stored["occurred_at"].startswith("2026-01-05T01:00:00")
    assert api.get(f"/v1/activities/{stored['activity_id']}", headers=owner_headers).json() == stored

    again = api.post("/v1/activities", headers=owner_headers, json=activity(
        user, resource={"category": "repo", "external_id": "acme/sdk"}, source_ref=f"delivery-{user}"))
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "activity": stored}
    other = api.post("/v1/activities", headers=owner_headers, json=activity(
        user, "fork", resource={"category": "repo", "external_id": "acme/sdk"})).json()["activity"]
    assert (other["resource_id"], other["developer_id"], other["group_key"]) == (
        stored["resource_id"], stored["developer_id"], "sdk")  # one resource, one account, one developer


def test_a_batch_with_a_duplicate_and_its_replay(api, community_tenant, owner_headers):
    users = [uuid.uuid4().hex[:8] for _ in range(3)]
    items = [activity(users[0], dedup_key=f"k-{users[0]}"), activity(users[1], "fork"),
             activity(users[0], dedup_key=f"k-{users[0]}"), activity(users[2], "issue", source_ref=f"i-{users[2]}"),
             {"anon_id": f"qr-{users[2]}", "action": "scan", "source": "qr", "source_ref": f"scan-{users[2]}",
              "occurred_at": "2026-01-06T00:00:00Z"}]
    first = api.post("/v1/activities/batch", headers=owner_headers, json={"items": items})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["inserted"], body["duplicates"], body["skipped_consent"]) == (4, 1, 0)
    statuses = [i["status"] for i in body["items"]]
    assert statuses == ["inserted", "inserted", "duplicate", "inserted", "inserted"]
    ids = [i["activity_id"] for i in body["items"]]
    assert ids[2] == ids[0]

    replay = api.post("/v1/activities/batch", headers=owner_headers, json={"items": items}).json()
    # the fork names no key: it cannot be told from a new fork, and is one (an Idempotency-Key guards a retry)
    assert (replay["inserted"], replay["duplicates"]) == (1, 4)
    assert [i["activity_id"] for i in replay["items"]][:1] + [i["activity_id"] for i in replay["items"]][2:] == \
        ids[:1] + ids[2:]


def test_a_bad_item_is_a_422_naming_it_and_nothing_is_written(api, community_tenant, owner_headers):
    before = counts(community_tenant)
    good = activity(uuid.uuid4().hex[:8], resource={"category": "blog", "external_id": f"p-{uuid.uuid4().hex}"})
    cases = [
        ({"account_id": str(uuid.uuid4()), "action": "star", "occurred_at": "2026-01-05T00:00:00Z"},
         ["body", "items", 1, "account_id"]),
        ({"action": "star", "occurred_at": "2026-01-05T00:00:00Z"}, ["body", "items", 1, "account"]),
        ({**activity("1"), "developer_id": str(uuid.uuid4())}, ["body", "items", 1, "developer_id"]),
        ({**activity("1"), "resource_id": str(uuid.uuid4())}, ["body", "items", 1, "resource_id"]),
        (activity("1", occurred_at="2026-01-05T00:00:00"), ["body", "items", 1, "occurred_at"]),
        ({**activity("1"), "account": account("1", provider="Not A Provider")},
         ["body", "items", 1, "account", "provider"]),
    ]
    for bad, loc in cases:
        answer = api.post("/v1/activities/batch", headers=owner_headers, json={"items": [good, bad]})
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert loc in [e["loc"] for e in answer.json()["errors"]], answer.json()
    one = api.post("/v1/activities", headers=owner_headers,
                   json={"account_id": str(uuid.uuid4()), "action": "star", "occurred_at": "2026-01-05T00:00:00Z"})
    assert one.status_code == 422 and one.json()["errors"][0]["loc"] == ["body", "account_id"]
    too_many = api.post("/v1/activities/batch", headers=owner_headers, json={"items": [good] * 10_001})
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["loc"] == ["body", "items"]
    assert counts(community_tenant) == before


def test_a_developer_without_analytics_consent_gets_no_tracking_activities(api, community_tenant, owner_headers,
                                                                            tenant_conn):
    user = uuid.uuid4().hex[:8]
    first = api.post("/v1/activities", headers=owner_headers, json=activity(user)).json()["activity"]
    with tenant_conn() as conn:
        conn.execute("UPDATE developers SET consent_analytics = false WHERE developer_id = %s",
                     (first["developer_id"],))
    click = api.post("/v1/activities", headers=owner_headers,
                     json=activity(user, "click", source="shortlink", metadata={"shortlink": "abc"}))
    assert click.status_code == 200 and click.json() == {"status": "skipped_consent", "activity": None}
    batch = api.post("/v1/activities/batch", headers=owner_headers, json={"items": [
        activity(user, "open", source="email"), activity(user, "signup", source="ga"),
        {"developer_id": first["developer_id"], "action": "view", "source": "web",
         "occurred_at": "2026-01-07T00:00:00Z"},
        activity(user, "comment")]}).json()
    assert [i["status"] for i in batch["items"]] == ["skipped_consent"] * 3 + ["inserted"]
    assert batch["skipped_consent"] == 3
    listed = api.get("/v1/activities", headers=owner_headers, params={"developer_id": first["developer_id"]}).json()
    assert sorted(a["action"] for a in listed["items"]) == ["comment", "star"]


def test_the_list_filters_and_pages_newest_first(api, community_tenant, owner_headers):
    user = uuid.uuid4().hex[:8]
    items = [activity(user, "comment", occurred_at=f"2026-02-{day:02d}T12:00:00Z", source="forum")
             for day in range(1, 8)]
    body = api.post("/v1/activities/batch", headers=owner_headers, json={"items": items}).json()
    developer = api.get(f"/v1/activities/{body['items'][0]['activity_id']}", headers=owner_headers).json()
    seen, cursor = [], None
    while True:
        page = api.get("/v1/activities", headers=owner_headers, params={
            "developer_id": developer["developer_id"], "limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [a["occurred_at"][:10] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"2026-02-{day:02d}" for day in range(7, 0, -1)]
    window = api.get("/v1/activities", headers=owner_headers, params={
        "account_id": developer["account_id"], "action": "comment", "source": "forum",
        "occurred_from": "2026-02-03T00:00:00Z", "occurred_to": "2026-02-05T12:00:00Z"}).json()
    assert [a["occurred_at"][:10] for a in window["items"]] == ["2026-02-04", "2026-02-03"]
    bad = api.get("/v1/activities", headers=owner_headers, params={"cursor": "bm90IGEgY3Vyc29y"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "cursor"]
    missing = api.get(f"/v1/activities/{uuid.uuid4()}", headers=owner_headers)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_a_viewer_reads_but_does_not_write(api, community_tenant, owner_headers, headers_for):
    viewer = headers_for("viewer")
    assert api.get("/v1/activities", headers=viewer).status_code == 200
    assert api.post("/v1/activities", headers=viewer, json=activity("1")).status_code == 403
    assert api.post("/v1/activities", headers=headers_for("member"),
                    json=activity(uuid.uuid4().hex[:8])).status_code == 201


def test_a_neighbour_in_the_pool_cannot_see_or_reference_this_tenants_rows(api, community_tenant, owner_headers,
                                                                          neighbour):
    mine = api.post("/v1/activities", headers=owner_headers, json=activity(
        uuid.uuid4().hex[:8], resource={"category": "event", "external_id": f"e-{uuid.uuid4().hex}"},
        dedup_key=f"shared-{uuid.uuid4().hex}")).json()["activity"]
    theirs = neighbour.headers
    assert api.get(f"/v1/activities/{mine['activity_id']}", headers=theirs).status_code == 404
    assert mine["activity_id"] not in {a["activity_id"] for a in api.get(
        "/v1/activities", headers=theirs, params={"limit": 200}).json()["items"]}
    assert api.get("/v1/activities", headers=theirs, params={"developer_id": mine["developer_id"]}).json()["items"] \
        == []
    before = counts(neighbour)
    for field in ("account_id", "developer_id", "resource_id"):
        item = {"action": "star", "occurred_at": "2026-01-05T00:00:00Z", field: mine[field]}
        if field == "resource_id":
            item["anon_id"] = "a-1"
        answer = api.post("/v1/activities/batch", headers=theirs, json={"items": [item]})
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["loc"] == ["body", "items", 0, field]
    assert counts(neighbour) == before
    # a dedup key is per tenant: the neighbour's own event with the same key is its own, not a duplicate
    same_key = api.post("/v1/activities", headers=theirs, json=activity("42", dedup_key=mine["dedup_key"]))
    assert same_key.status_code == 201 and same_key.json()["activity"]["activity_id"] != mine["activity_id"]
