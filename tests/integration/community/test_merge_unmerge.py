"""Merge suggestions, merges and unmerges through the API (real PostgreSQL, a pooled tenant): a suggestion carries
its evidence, accepting it merges, rejecting it is remembered; a merge moves every account, identifier and activity
and an unmerge puts exactly those rows back; the history lists both."""
from __future__ import annotations

import uuid

from funnel.community.identity import AccountIn


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _suggestions_between(api, headers, a, b) -> list[dict]:
    items = api.get("/v1/merge-suggestions", headers=headers, params={"developer_id": str(a)}).json()["items"]
    return [s for s in items if {s["developer"]["developer_id"], s["other_developer"]["developer_id"]}
            == {str(a), str(b)}]


def _same_person(tag: str) -> tuple[AccountIn, AccountIn]:
    """Two accounts that only suggest one person: the same full name and handle on two providers."""
    return (AccountIn("github", f"g-{tag}", handle=f"ktanaka{tag}", display_name="Keiko Tanaka"),
            AccountIn("discord", f"d-{tag}", handle=f"ktanaka{tag}", display_name="Keiko Tanaka"))


def _rows_of(tenant_conn, developer_id) -> dict[str, set[uuid.UUID]]:
    with tenant_conn() as conn:
        return {table: {r["id"] for r in conn.execute(
            f"SELECT {key} AS id FROM {table} WHERE developer_id = %s", (developer_id,)).fetchall()}
            for table, key in (("accounts", "account_id"), ("developer_identifiers", "identifier_id"),
                               ("activities", "activity_id"))}


def test_a_suggestion_shows_its_evidence_and_accepting_merges(api, owner_headers, resolve):
    first, second = resolve(*_same_person(_uid()))
    assert first.developer_id != second.developer_id
    [suggestion] = _suggestions_between(api, owner_headers, first.developer_id, second.developer_id)
    assert suggestion["status"] == "open" and 0.3 <= suggestion["confidence"] < 1
    assert {e["kind"] for e in suggestion["evidence"]} and all(e["detail"] for e in suggestion["evidence"])
    assert suggestion["developer"]["account_count"] == 1 and suggestion["other_developer"]["providers"]
    listed = api.get("/v1/merge-suggestions", headers=owner_headers).json()["items"]
    assert [s["confidence"] for s in listed] == sorted((s["confidence"] for s in listed), reverse=True)
    above = api.get("/v1/merge-suggestions", headers=owner_headers, params={"min_confidence": 0.99}).json()
    assert above["items"] == []

    accepted = api.post(f"/v1/merge-suggestions/{suggestion['suggestion_id']}/accept", headers=owner_headers)
    assert accepted.status_code == 200, accepted.text
    log = accepted.json()
    assert log["action"] == "merge" and log["evidence"] == suggestion["evidence"] and log["merged_by"]
    into, from_ = log["into_developer_id"], log["from_developer_id"]
    assert {into, from_} == {str(first.developer_id), str(second.developer_id)}
    assert len(log["moved"]["accounts"]) == 1
    old_link = api.get(f"/v1/developers/{from_}", headers=owner_headers)
    assert old_link.status_code == 200  # an old link still answers, pointing to where the rows are
    assert old_link.json()["developer"]["merged_into"] == into and old_link.json()["current_developer_id"] == into
    assert old_link.json()["accounts"] == []
    survivor = api.get(f"/v1/developers/{into}", headers=owner_headers).json()
    assert len(survivor["accounts"]) == 2 and survivor["open_suggestions"] == []
    assert from_ not in [d["developer_id"] for d in api.get("/v1/developers", headers=owner_headers,
                                                             params={"q": "Keiko"}).json()["items"]]
    again = api.post(f"/v1/merge-suggestions/{suggestion['suggestion_id']}/accept", headers=owner_headers)
    assert again.status_code == 409
    assert api.post(f"/v1/merge-suggestions/{suggestion['suggestion_id']}/reject",
                    headers=owner_headers).status_code == 409
    assert api.post(f"/v1/merge-suggestions/{uuid.uuid4()}/accept", headers=owner_headers).status_code == 404


def test_rejecting_is_remembered_when_the_accounts_come_again(api, owner_headers, resolve):
    tag = _uid()
    first, second = resolve(*_same_person(tag))
    [suggestion] = _suggestions_between(api, owner_headers, first.developer_id, second.developer_id)
    rejected = api.post(f"/v1/merge-suggestions/{suggestion['suggestion_id']}/reject", headers=owner_headers)
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected" and rejected.json()["decided_by"]
    assert _suggestions_between(api, owner_headers, first.developer_id, second.developer_id) == []
    again = resolve(*_same_person(tag))  # re-ingested, e.g. the next pull of both providers
    assert [r.developer_id for r in again] == [first.developer_id, second.developer_id]
    assert _suggestions_between(api, owner_headers, first.developer_id, second.developer_id) == []


def test_merge_then_unmerge_keeps_every_row(api, owner_headers, resolve, add_activities, tenant_conn):
    tag = _uid()
    a1, a2 = resolve(AccountIn("github", f"ma-{tag}", handle=f"aoi{tag}", email=f"aoi.{tag}@aoi-lab.co.jp"),
                     AccountIn("x", f"ma2-{tag}", handle=f"aoi{tag}x", email=f"aoi.{tag}@aoi-lab.co.jp"))
    b1, = resolve(AccountIn("discord", f"mb-{tag}", handle=f"ren{tag}", email=f"ren.{tag}@ren-lab.jp",
                            attributes={"phone": "03-1234-5678"}))
    a, b = a1.developer_id, b1.developer_id
    assert a2.developer_id == a and a != b
    add_activities(a1, ["star", "fork"])
    add_activities(b1, ["comment", "issue", "pull_request"])
    before_a, before_b = _rows_of(tenant_conn, a), _rows_of(tenant_conn, b)
    assert [len(before_b[t]) for t in ("accounts", "developer_identifiers", "activities")] == [1, 2, 3]
    a_profile_before = api.get(f"/v1/developers/{a}", headers=owner_headers).json()["developer"]

    merged = api.post("/v1/merges", headers=owner_headers,
                      json={"into_developer_id": str(a), "from_developer_id": str(b), "reason": "same person"})
    assert merged.status_code == 201, merged.text
    log = merged.json()
    assert log["reason"] == "same person" and log["evidence"][0]["kind"] == "manual"
    assert {uuid.UUID(x) for x in log["moved"]["accounts"]} == before_b["accounts"]
    assert {uuid.UUID(x) for x in log["moved"]["identifiers"]} == before_b["developer_identifiers"]
    assert log["moved"]["activity_count"] == 3
    during = _rows_of(tenant_conn, a)
    assert during == {t: before_a[t] | before_b[t] for t in before_a}
    assert _rows_of(tenant_conn, b) == {t: set() for t in before_b}
    profile = api.get(f"/v1/developers/{a}", headers=owner_headers).json()
    assert profile["stats"]["total"] == 5 and len(profile["accounts"]) == 3
    assert api.post("/v1/merges", headers=owner_headers, json={
        "into_developer_id": str(a), "from_developer_id": str(b)}).status_code == 409  # b is merged now

    undone = api.post(f"/v1/merges/{log['merge_id']}/undo", headers=owner_headers)
    assert undone.status_code == 200, undone.text
    assert undone.json()["action"] == "unmerge" and undone.json()["undoes_merge_id"] == log["merge_id"]
    assert _rows_of(tenant_conn, a) == before_a and _rows_of(tenant_conn, b) == before_b
    restored = api.get(f"/v1/developers/{b}", headers=owner_headers).json()
    assert restored["developer"]["merged_into"] is None and restored["current_developer_id"] == str(b)
    a_after = api.get(f"/v1/developers/{a}", headers=owner_headers).json()["developer"]
    assert {**a_after, "updated_at": None} == {**a_profile_before, "updated_at": None}

    assert api.post(f"/v1/merges/{log['merge_id']}/undo", headers=owner_headers).status_code == 409
    assert api.post(f"/v1/merges/{undone.json()['merge_id']}/undo", headers=owner_headers).status_code == 404
    assert api.post(f"/v1/merges/{uuid.uuid4()}/undo", headers=owner_headers).status_code == 404
    history = api.get("/v1/merges", headers=owner_headers, params={"developer_id": str(b)}).json()["items"]
    assert [(m["action"], m["merge_id"]) for m in history] == [("unmerge", undone.json()["merge_id"]),
                                                              ("merge", log["merge_id"])]
    assert history[1]["undone_at"] is not None
    assert [m["merge_id"] for m in restored["merge_history"]] == [m["merge_id"] for m in history]
    # the people who undid it said these are two people: not suggested again
    assert _suggestions_between(api, owner_headers, a, b) == []


def test_history_pages_and_a_later_merge_blocks_undoing_an_earlier_one(api, owner_headers, resolve):
    tag = _uid()
    x, y, z = resolve(AccountIn("github", f"hx-{tag}"), AccountIn("github", f"hy-{tag}"),
                      AccountIn("github", f"hz-{tag}"))
    first = api.post("/v1/merges", headers=owner_headers, json={
        "into_developer_id": str(x.developer_id), "from_developer_id": str(y.developer_id)}).json()
    second = api.post("/v1/merges", headers=owner_headers, json={
        "into_developer_id": str(x.developer_id), "from_developer_id": str(z.developer_id)}).json()
    blocked = api.post(f"/v1/merges/{first['merge_id']}/undo", headers=owner_headers)
    assert blocked.status_code == 409
    page = api.get("/v1/merges", headers=owner_headers, params={"developer_id": str(x.developer_id), "limit": 1})
    assert [m["merge_id"] for m in page.json()["items"]] == [second["merge_id"]]
    rest = api.get("/v1/merges", headers=owner_headers, params={
        "developer_id": str(x.developer_id), "limit": 1, "cursor": page.json()["next_cursor"]}).json()
    assert [m["merge_id"] for m in rest["items"]] == [first["merge_id"]] and rest["next_cursor"] is None
    assert api.post(f"/v1/merges/{second['merge_id']}/undo", headers=owner_headers).status_code == 200
    assert api.post(f"/v1/merges/{first['merge_id']}/undo", headers=owner_headers).status_code == 200
