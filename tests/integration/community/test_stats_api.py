"""The stats API against real PostgreSQL (a pooled tenant beside another of the same pool): funnel counts and
conversion computed by hand (all developers and one campaign's), the funnel map, time series in two time zones and
three intervals, saved segments (CRUD, members of both kinds as cursor pages), rolled-up developer and campaign
stats, 422s naming the bad field, roles, and the neighbour tenant seeing none of it."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from funnel import db
from funnel.community.identity import AccountIn
from tests.integration.community.conftest import COMMUNITY_POOL, PROBLEM
from tests.support.tenants import new_tenant

FEB = {"from": "2026-02-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def world(runtime, owner_headers, resolve, tenant_conn, community_tenant) -> dict[str, Any]:
    """d1: click (tagged with campaign X) 2 Feb 16:00 UTC (3 Feb in Tokyo), star, signup -> adoption;
    d2: click, star -> engagement; d3: view -> awareness; d4: pull_request only -> advocacy; an anonymous click;
    d5 last active 40 days ago, d6 5 days ago, d7 200 days ago (the segments)."""
    tag = uuid.uuid4().hex[:6]
    devs = [r.developer_id for r in resolve(*(AccountIn(provider="github", external_user_id=f"{tag}-{n}",
                                                        handle=f"stats{tag}{n}", display_name=f"Stats {n}")
                                              for n in range(7)))]
    now = datetime.now(UTC)
    with tenant_conn() as conn:
        campaign = conn.execute("INSERT INTO campaigns (name, attributes) VALUES (%s, %s) RETURNING campaign_id",
                                (f"X {tag}", Jsonb({"utm_campaign": f"x-{tag}"}))).fetchone()["campaign_id"]
        rows = [(devs[0], "click", _at("2026-02-02T16:00:00+00:00"), {"utm_campaign": f"x-{tag}"}),
                (devs[0], "star", _at("2026-02-03T10:00:00+00:00"), None),
                (devs[0], "signup", _at("2026-02-04T10:00:00+00:00"), None),
                (devs[1], "click", _at("2026-02-02T10:00:00+00:00"), None),
                (devs[1], "star", _at("2026-02-10T10:00:00+00:00"), None),
                (devs[2], "view", _at("2026-02-05T10:00:00+00:00"), None),
                (devs[3], "pull_request", _at("2026-02-06T10:00:00+00:00"), None),
                (None, "click", _at("2026-02-07T10:00:00+00:00"), None),
                (devs[4], "star", now - timedelta(days=40), None),
                (devs[5], "star", now - timedelta(days=5), None),
                (devs[6], "star", now - timedelta(days=200), None)]
        for developer, action, at, metadata in rows:
            conn.execute("INSERT INTO activities (developer_id, anon_id, action, occurred_at, source, metadata, "
                         "dedup_key) VALUES (%s, %s, %s, %s, 'test', %s, %s)",
                         (developer, None if developer else f"anon-{tag}", action, at,
                          Jsonb(metadata) if metadata else None, f"stats:{uuid.uuid4()}"))
    return {"devs": [str(d) for d in devs], "campaign": str(campaign)}


@pytest.fixture(scope="module")
def neighbour(runtime):
    """Another tenant of the same pooled database."""
    return new_tenant(pool=COMMUNITY_POOL)


def _stages(answer) -> list[tuple]:
    assert answer.status_code == 200, answer.text
    return [(s["stage_key"], s["activities"], s["developers"], s["reached"], s["conversion_from_previous"])
            for s in answer.json()["stages"]]


def test_funnel_counts_and_conversion(api, owner_headers, world):
    assert _stages(api.get("/v1/funnel", headers=owner_headers, params=FEB)) == [
        ("awareness", 4, 3, 4, None), ("engagement", 2, 2, 3, "0.7500"), ("adoption", 1, 1, 2, "0.6667"),
        ("advocacy", 1, 1, 1, "0.5000")]
    assert _stages(api.get("/v1/funnel", headers=owner_headers, params={**FEB, "campaign_id": world["campaign"]})) == [
        ("awareness", 1, 1, 1, None), ("engagement", 1, 1, 1, "1.0000"), ("adoption", 1, 1, 1, "1.0000"),
        ("advocacy", 0, 0, 0, "0.0000")]
    answer = api.get("/v1/funnel", headers=owner_headers, params={"from": "2026-02-03T00:00:00Z",
                                                                  "to": "2026-02-05T00:00:00Z"})
    assert _stages(answer)[:2] == [("awareness", 0, 0, 1, None), ("engagement", 1, 1, 1, "1.0000")]
    assert answer.json()["from"] == "2026-02-03T00:00:00Z"


def test_time_series_in_the_tenants_zone(api, owner_headers, headers_for, world):
    week = {"from": "2026-02-01T00:00:00+09:00", "to": "2026-02-08T00:00:00+09:00"}
    tokyo = api.get("/v1/stats/activities", headers=headers_for("viewer"),
                    params={**week, "interval": "day", "tz": "Asia/Tokyo"})
    assert tokyo.status_code == 200, tokyo.text
    body = tokyo.json()
    assert body["buckets"][0] == "2026-02-01" and len(body["buckets"]) == 7
    points = {p["start"]: p["activities"] for p in body["series"][0]["points"]}
    # d1's click at 16:00 UTC on 2 Feb is 01:00 on 3 Feb in Tokyo
    assert (points["2026-02-02"], points["2026-02-03"]) == (1, 2)
    utc = api.get("/v1/stats/activities", headers=owner_headers, params={**week, "interval": "day"}).json()
    points = {p["start"]: p["activities"] for p in utc["series"][0]["points"]}
    assert (points["2026-02-02"], points["2026-02-03"]) == (2, 1)
    by_stage = api.get("/v1/stats/activities", headers=owner_headers,
                       params={**FEB, "interval": "week", "by": "stage"}).json()
    assert by_stage["buckets"][0] == "2026-01-26"  # the ISO week holding 1 Feb starts on Monday 26 Jan
    totals = {s["key"]: sum(p["activities"] for p in s["points"]) for s in by_stage["series"]}
    assert totals == {"awareness": 4, "engagement": 2, "adoption": 1, "advocacy": 1}
    stars = api.get("/v1/stats/activities", headers=owner_headers,
                    params={**FEB, "interval": "month", "by": "action", "stage": "engagement"}).json()
    assert [(s["key"], s["points"]) for s in stars["series"]] == [
        ("star", [{"start": "2026-02-01", "activities": 2, "developers": 2}])]


@pytest.mark.parametrize(("path", "params", "loc"), [
    ("/v1/funnel", {"from": "2026-03-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}, ["query", "to"]),
    ("/v1/funnel", {"campaign_id": str(uuid.uuid4())}, ["query", "campaign_id"]),
    ("/v1/funnel", {"from": "2026-02-01T00:00:00"}, ["query", "from"]),
    ("/v1/stats/activities", {"tz": "Mars/Olympus"}, ["query", "tz"]),
    ("/v1/stats/activities", {"tz": "localtime"}, ["query", "tz"]),
    ("/v1/stats/activities", {"interval": "fortnight"}, ["query", "interval"]),
    ("/v1/stats/activities", {"stage": "delight"}, ["query", "stage"]),
    ("/v1/stats/activities", {"by": "color"}, ["query", "by"]),
    ("/v1/stats/activities", {"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, ["query", "interval"]),
])
def test_bad_input_is_422_naming_the_field(api, owner_headers, world, path, params, loc):
    answer = api.get(path, headers=owner_headers, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert [e["loc"] for e in answer.json()["errors"]] == [loc]


def test_funnel_map_replaces_the_defaults(api, owner_headers, headers_for, world):
    default = api.get("/v1/funnel/map", headers=owner_headers).json()
    assert default["is_default"] and {"action": "click", "stage_key": "awareness"} in default["mappings"]
    assert api.put("/v1/funnel/map", headers=headers_for("member"), json={"mappings": []}).status_code == 403
    bad = api.put("/v1/funnel/map", headers=owner_headers,
                  json={"mappings": [{"action": "click", "stage_key": "advocacy"},
                                     {"action": "star", "stage_key": "delight"}]})
    assert bad.status_code == 422 and [e["loc"] for e in bad.json()["errors"]] == [["body", "mappings", 1,
                                                                                      "stage_key"]]
    twice = api.put("/v1/funnel/map", headers=owner_headers,
                    json={"mappings": [{"action": "click", "stage_key": "advocacy"},
                                       {"action": "click", "stage_key": "awareness"}]})
    assert [e["loc"] for e in twice.json()["errors"]] == [["body", "mappings", 1, "action"]]
    own = api.put("/v1/funnel/map", headers=owner_headers,
                  json={"mappings": [{"action": "click", "stage_key": "advocacy"}]})
    assert own.status_code == 200 and not own.json()["is_default"]
    assert _stages(api.get("/v1/funnel", headers=owner_headers, params=FEB)) == [
        ("awareness", 0, 0, 2, None), ("engagement", 0, 0, 2, "1.0000"), ("adoption", 0, 0, 2, "1.0000"),
        ("advocacy", 3, 2, 2, "1.0000")]
    assert api.put("/v1/funnel/map", headers=owner_headers, json={"mappings": []}).json()["is_default"]


def test_rollup_and_rolled_up_stats(api, owner_headers, headers_for, world):
    assert api.post("/v1/stats/rollup", headers=headers_for("member"), json={}).status_code == 403
    ran = api.post("/v1/stats/rollup", headers=owner_headers, json={})
    assert ran.status_code == 200, ran.text
    assert ran.json()["ran"] and ran.json()["pending_changes"] == 0 and ran.json()["last"]["rolled_up_at"]
    d1 = api.get(f"/v1/stats/developers/{world['devs'][0]}", headers=owner_headers).json()
    assert (d1["total_actions"], d1["clicks"], d1["stars"], d1["last_action_at"]) == (
        3, 1, 1, "2026-02-04T10:00:00Z")
    campaign = api.get(f"/v1/stats/campaigns/{world['campaign']}", headers=owner_headers).json()
    assert (campaign["actions_total"], campaign["conversions"], campaign["cost_total"],
            campaign["roi_per_cost"]) == (1, 0, "0", None)
    assert api.get(f"/v1/stats/developers/{uuid.uuid4()}", headers=owner_headers).status_code == 404
    assert api.get("/v1/stats/rollup", headers=headers_for("viewer")).json()["pending_changes"] == 0


def test_segments_crud_and_members(api, owner_headers, headers_for, world):
    api.post("/v1/stats/rollup", headers=owner_headers, json={})
    silent = api.post("/v1/segments", headers=owner_headers, json={
        "name": "went quiet", "definition": {"kind": "active_then_silent", "active_days": 90, "silent_days": 30}})
    assert silent.status_code == 201, silent.text
    segment = silent.json()
    assert segment["definition"] == {"kind": "active_then_silent", "active_days": 90, "silent_days": 30}
    assert api.post("/v1/segments", headers=owner_headers, json={
        "name": "went quiet", "definition": {"kind": "active_then_silent"}}).status_code == 409
    assert api.post("/v1/segments", headers=headers_for("viewer"), json={
        "name": "v", "definition": {"kind": "active_then_silent"}}).status_code == 403
    members = api.get(f"/v1/segments/{segment['segment_id']}/members", headers=owner_headers).json()
    assert [m["developer_id"] for m in members["items"]] == [world["devs"][4]]  # 40 days quiet; not 5, not 200

    engaged = api.post("/v1/segments", headers=owner_headers, json={
        "name": "top this year", "definition": {"kind": "most_engaged", "top": 2, "period": "last_days",
                                                 "days": 365}}).json()
    first = api.get(f"/v1/segments/{engaged['segment_id']}/members", headers=owner_headers, params={"limit": 1})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [(m["developer_id"], m["activities_in_period"]) for m in page["items"]] == [(world["devs"][0], 3)]
    second = api.get(f"/v1/segments/{engaged['segment_id']}/members", headers=owner_headers,
                     params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [(m["developer_id"], m["activities_in_period"]) for m in second["items"]] == [(world["devs"][1], 2)]
    assert second["next_cursor"] is None  # top 2
    # a most-engaged cursor is an activity count: a time cursor of the other kind is refused
    refused = api.get(f"/v1/segments/{engaged['segment_id']}/members", headers=owner_headers,
                      params={"cursor": members["next_cursor"] or _time_cursor(world["devs"][0])})
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["query", "cursor"]

    quarter = api.post("/v1/segments", headers=owner_headers, json={
        "name": "this quarter", "definition": {"kind": "most_engaged", "period": "quarter", "tz": "Asia/Tokyo"}})
    assert quarter.status_code == 201 and quarter.json()["definition"]["tz"] == "Asia/Tokyo"
    assert api.get(f"/v1/segments/{quarter.json()['segment_id']}/members", headers=owner_headers).status_code == 200
    for bad, loc in (({"kind": "most_engaged", "tz": "Nowhere/City"}, ["body", "definition", "tz"]),
                     ({"kind": "most_engaged", "period": "last_days"}, ["body", "definition", "days"]),
                     ({"kind": "loudest"}, None)):
        answer = api.post("/v1/segments", headers=owner_headers, json={"name": f"bad {uuid.uuid4()}",
                                                                       "definition": bad})
        assert answer.status_code == 422, answer.text
        if loc:
            assert [e["loc"] for e in answer.json()["errors"]] == [loc]

    renamed = api.patch(f"/v1/segments/{segment['segment_id']}", headers=owner_headers,
                        json={"name": "quiet for a month", "definition": {"kind": "active_then_silent",
                                                                          "silent_days": 3}})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["definition"] == {"kind": "active_then_silent", "active_days": 90, "silent_days": 3}
    listed = api.get("/v1/segments", headers=owner_headers, params={"kind": "most_engaged"}).json()
    assert {s["name"] for s in listed["items"]} == {"top this year", "this quarter"}
    assert api.delete(f"/v1/segments/{segment['segment_id']}", headers=owner_headers).status_code == 204
    assert api.get(f"/v1/segments/{segment['segment_id']}", headers=owner_headers).status_code == 404


def _time_cursor(developer_id: str) -> str:
    from funnel.platform.pagination import encode_cursor
    return encode_cursor([datetime.now(UTC).isoformat(), developer_id])


def test_the_neighbour_of_the_pool_sees_none_of_it(api, owner_headers, neighbour, world, community_tenant):
    api.post("/v1/stats/rollup", headers=owner_headers, json={})
    mine = api.post("/v1/segments", headers=owner_headers, json={
        "name": f"mine {uuid.uuid4()}", "definition": {"kind": "most_engaged", "period": "last_days", "days": 365}})
    assert _stages(api.get("/v1/funnel", headers=neighbour.headers, params=FEB)) == [
        ("awareness", 0, 0, 0, None), ("engagement", 0, 0, 0, None), ("adoption", 0, 0, 0, None),
        ("advocacy", 0, 0, 0, None)]
    series = api.get("/v1/stats/activities", headers=neighbour.headers, params={**FEB, "interval": "month"}).json()
    assert series["series"][0]["points"][0]["activities"] == 0
    segment_id = mine.json()["segment_id"]
    assert api.get(f"/v1/segments/{segment_id}", headers=neighbour.headers).status_code == 404
    assert api.get(f"/v1/segments/{segment_id}/members", headers=neighbour.headers).status_code == 404
    assert api.get("/v1/segments", headers=neighbour.headers).json()["items"] == []
    assert api.get(f"/v1/stats/developers/{world['devs'][0]}", headers=neighbour.headers).status_code == 404
    assert api.get(f"/v1/stats/campaigns/{world['campaign']}", headers=neighbour.headers).status_code == 404
    theirs = api.post("/v1/segments", headers=neighbour.headers, json={
        "name": "top", "definition": {"kind": "most_engaged", "period": "last_days", "days": 365}}).json()
    assert api.get(f"/v1/segments/{theirs['segment_id']}/members", headers=neighbour.headers).json()["items"] == []
    # the neighbour's rollup consumes its own changes only: this tenant's stats and log are untouched
    neighbour_rollup = api.post("/v1/stats/rollup", headers=neighbour.headers, json={"full": True}).json()
    assert neighbour_rollup["last"]["developers_written"] == 0
    with db.tenant_transaction(community_tenant.tenant_id) as conn:
        count = conn.execute("SELECT count(*) AS n FROM developer_stats").fetchone()["n"]
    assert count >= 7
