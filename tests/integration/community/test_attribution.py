"""Attribution against real PostgreSQL (a pooled tenant): touches by UTM (the campaign's utm_campaign or its name),
by resource and by shortlink (an anonymous click before the visitor signed in), the lookback window, each model's
rows, recomputing a window twice (the same rows), the conversion actions, the settings, and ROI figures computed by
hand."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from funnel.community.identity import AccountIn
from tests.support.gateway_client import gateway_client

T0 = datetime(2026, 2, 10, 12, tzinfo=UTC)
WINDOW = {"from": "2026-02-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}


@pytest.fixture(scope="module")
def world(runtime, owner_headers, resolve, tenant_conn) -> Iterator[dict[str, Any]]:
    """Campaigns A (utm_campaign), B (matched by its name), C (through a resource), D (through a shortlink), and
    four developers who sign up at T0:
    - d1: a UTM click of A 4 days before, a view of C's resource 2 days before; d1 signs up again on 5 March;
    - d2: a visit tagged with B's name a day before; an api_call a day after signing up;
    - d3: an anonymous click of D's shortlink 3 days before, then signs up with that anonymous id;
    - d4: a UTM click of A 40 days before (out of a 30-day lookback)."""
    with gateway_client(runtime.api_url, timeout=30) as api:  # `api` is per test; this is once a module
        yield _world(api, owner_headers, resolve, tenant_conn)


def _world(api, owner_headers, resolve, tenant_conn) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]

    def campaign(**fields) -> str:
        answer = api.post("/v1/campaigns", headers=owner_headers, json={"name": f"{tag} {uuid.uuid4().hex[:4]}",
                                                                        **fields})
        assert answer.status_code == 201, answer.text
        return answer.json()["campaign_id"]

    a = campaign(attributes={"utm_campaign": f"a-{tag}", "utm_source": "x"})
    b_name = f"B {tag}"
    b = campaign(name=b_name)
    c = campaign()
    d = campaign(currency="USD")
    resource = api.post("/v1/resources", headers=owner_headers,
                        json={"category": "blog", "title": "post", "campaign_id": c}).json()["resource_id"]
    for entry in ({"category": "ad", "amount": "30000", "spent_at": "2026-02-01"},
                  {"category": "venue", "amount": "15000", "spent_at": "2026-02-05"},
                  {"category": "tool", "amount": "12.50", "currency": "USD", "spent_at": "2026-02-06"}):
        assert api.post(f"/v1/campaigns/{a}/budgets", headers=owner_headers, json=entry).status_code == 201
    assert api.post(f"/v1/campaigns/{d}/budgets", headers=owner_headers,
                    json={"category": "ad", "amount": "20.00", "currency": "USD", "spent_at": "2026-02-01"}
                    ).status_code == 201
    devs = [r.developer_id for r in resolve(*(AccountIn(provider="github", external_user_id=f"{tag}-{n}",
                                                        handle=f"attr{tag}{n}") for n in range(4)))]
    anon = f"anon-{tag}"
    ids: dict[str, uuid.UUID] = {}
    with tenant_conn() as conn:
        shortlink = conn.execute("INSERT INTO shortlinks (key, target_url, campaign_id) VALUES (%s, %s, %s) "
                                 "RETURNING shortlink_id", (f"k{tag}", "https://example.com/", d)).fetchone()
        rows = [("d1_click", devs[0], None, None, "click", T0 - timedelta(days=4), {"utm_campaign": f"a-{tag}"}),
                ("d1_view", devs[0], None, resource, "view", T0 - timedelta(days=2), None),
                ("d1_signup", devs[0], None, None, "signup", T0, None),
                ("d1_signup_march", devs[0], None, None, "signup", datetime(2026, 3, 5, tzinfo=UTC), None),
                ("d2_visit", devs[1], None, None, "visit", T0 - timedelta(days=1), {"utm_campaign": b_name}),
                ("d2_signup", devs[1], None, None, "signup", T0, None),
                ("d2_api_call", devs[1], None, None, "api_call", T0 + timedelta(days=1), None),
                ("d3_click", None, anon, None, "click", T0 - timedelta(days=3),
                 {"shortlink_id": str(shortlink["shortlink_id"])}),
                ("d3_signup", devs[2], anon, None, "signup", T0, None),
                ("d4_click", devs[3], None, None, "click", T0 - timedelta(days=40), {"utm_campaign": f"a-{tag}"}),
                ("d4_signup", devs[3], None, None, "signup", T0, None)]
        for key, developer, anon_id, resource_id, action, at, metadata in rows:
            ids[key] = conn.execute(
                "INSERT INTO activities (developer_id, anon_id, resource_id, action, occurred_at, source, metadata, "
                "dedup_key) VALUES (%s, %s, %s, %s, %s, 'test', %s, %s) RETURNING activity_id",
                (developer, anon_id, resource_id, action, at, Jsonb(metadata) if metadata else None,
                 f"attr:{tag}:{key}")).fetchone()["activity_id"]
    return {"a": a, "b": b, "c": c, "d": d, "ids": ids}


def recompute(api, headers, **body) -> dict:
    answer = api.post("/v1/campaigns/attribution/recompute", headers=headers, json={**WINDOW, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()


def stored(tenant_conn, world) -> set[tuple[str, str, str]]:
    """(activity, campaign id, weight) of the world's rows, the activity by its name above."""
    names = {v: k for k, v in world["ids"].items()}
    with tenant_conn() as conn:
        rows = conn.execute("SELECT activity_id, campaign_id, weight FROM activity_campaigns "
                            "WHERE activity_id = ANY(%s)", (list(names),)).fetchall()
    return {(names[r["activity_id"]], str(r["campaign_id"]), str(r["weight"])) for r in rows}


def test_last_touch_and_recomputing_twice(api, owner_headers, world, tenant_conn):
    first = recompute(api, owner_headers, model="last_touch", lookback_days=30, conversion_actions=["signup"])
    assert (first["conversions"], first["attributed"], first["written"]) == (4, 3, 3)
    rows = stored(tenant_conn, world)
    assert rows == {("d1_signup", world["c"], "1"), ("d2_signup", world["b"], "1"),
                    ("d3_signup", world["d"], "1")}  # d4's only touch is 40 days old
    again = recompute(api, owner_headers, model="last_touch", lookback_days=30, conversion_actions=["signup"])
    assert (again["deleted"], again["written"]) == (3, 3)
    assert stored(tenant_conn, world) == rows


def test_each_model_writes_weights_that_sum_to_one(api, owner_headers, world, tenant_conn):
    recompute(api, owner_headers, model="first_touch", lookback_days=30, conversion_actions=["signup"])
    assert ("d1_signup", world["a"], "1") in stored(tenant_conn, world)

    linear = recompute(api, owner_headers, model="linear", lookback_days=30, conversion_actions=["signup"])
    assert linear["written"] == 4
    assert stored(tenant_conn, world) == {
        ("d1_signup", world["a"], "0.500000000000"), ("d1_signup", world["c"], "0.500000000000"),
        ("d2_signup", world["b"], "1.000000000000"), ("d3_signup", world["d"], "1.000000000000")}

    # half-life 2 days: A's touch (4 days) weighs 1/4, C's (2 days) 1/2: A 1/3, C 2/3
    recompute(api, owner_headers, model="time_decay", half_life_days=2, lookback_days=30,
              conversion_actions=["signup"])
    d1 = {(c, w) for name, c, w in stored(tenant_conn, world) if name == "d1_signup"}
    assert d1 == {(world["a"], "0.333333333333"), (world["c"], "0.666666666667")}

    # a 45-day lookback reaches d4's click
    assert recompute(api, owner_headers, model="last_touch", lookback_days=45,
                     conversion_actions=["signup"])["attributed"] == 4


def test_conversion_actions_and_rows_outside_the_window(api, owner_headers, world, tenant_conn):
    march = api.post("/v1/campaigns/attribution/recompute", headers=owner_headers,
                     json={"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z", "model": "last_touch",
                           "lookback_days": 30, "conversion_actions": ["signup"]}).json()
    assert (march["conversions"], march["written"]) == (1, 1)  # d1 again: C's view is 25 days before
    with_calls = recompute(api, owner_headers, model="last_touch", lookback_days=30,
                           conversion_actions=["signup", "api_call"])
    assert (with_calls["conversions"], with_calls["written"]) == (5, 4)
    assert ("d2_api_call", world["b"], "1") in stored(tenant_conn, world)
    signups_only = recompute(api, owner_headers, model="last_touch", lookback_days=30, conversion_actions=["signup"])
    assert (signups_only["deleted"], signups_only["written"]) == (4, 3)
    rows = stored(tenant_conn, world)
    assert not any(name == "d2_api_call" for name, _, _ in rows)
    assert ("d1_signup_march", world["c"], "1") in rows  # another window's row is left alone


def test_settings_are_the_defaults_of_a_recomputation(api, owner_headers, headers_for, world, tenant_conn):
    defaults = api.get("/v1/campaigns/attribution/settings", headers=owner_headers).json()
    assert defaults == {"model": "last_touch", "half_life_days": 7.0, "lookback_days": 30,
                        "conversion_actions": ["signup"], "updated_at": None}
    saved = api.put("/v1/campaigns/attribution/settings", headers=owner_headers,
                    json={"model": "linear", "half_life_days": 3, "lookback_days": 30,
                          "conversion_actions": ["signup", "signup"]})
    assert saved.status_code == 200, saved.text
    assert saved.json()["conversion_actions"] == ["signup"] and saved.json()["updated_at"]
    assert recompute(api, owner_headers)["model"] == "linear"
    assert api.put("/v1/campaigns/attribution/settings", headers=headers_for("viewer"),
                   json={"model": "linear"}).status_code == 403
    for bad in ({"to": WINDOW["from"]}, {"model": "u_shaped"}, {"half_life_days": 0}, {"conversion_actions": []},
                {"from": "2026-02-01T00:00:00"}, {"to": "2027-06-01T00:00:00Z"}):
        answer = api.post("/v1/campaigns/attribution/recompute", headers=owner_headers, json={**WINDOW, **bad})
        assert answer.status_code == 422, (bad, answer.text)


def test_roi_figures(api, owner_headers, world):
    recompute(api, owner_headers, model="linear", lookback_days=30, conversion_actions=["signup"])
    roi = api.get(f"/v1/campaigns/{world['a']}/roi", headers=owner_headers)
    assert roi.status_code == 200, roi.text
    # A: half of d1's signup; cost 30000 + 15000 JPY (the USD 12.50 apart); 45000 / 0.5; 0.5 / 45000
    assert roi.json() == {"campaign_id": world["a"], "currency": "JPY", "conversions": "0.5", "cost": "45000",
                          "other_currencies": [{"currency": "USD", "amount": "12.50"}],
                          "cost_per_conversion": "90000", "conversions_per_cost": "0.000011111111"}
    d = api.get(f"/v1/campaigns/{world['d']}/roi", headers=owner_headers).json()
    assert (d["currency"], d["conversions"], d["cost"], d["cost_per_conversion"], d["conversions_per_cost"]) == (
        "USD", "1", "20.00", "20", "0.05")
    c = api.get(f"/v1/campaigns/{world['c']}/roi", headers=owner_headers,
                params={"conversions_to": "2026-03-01T00:00:00Z"}).json()
    assert (c["conversions"], c["cost"], c["cost_per_conversion"], c["conversions_per_cost"]) == ("0.5", "0", "0",
                                                                                                  None)
    b_march = api.get(f"/v1/campaigns/{world['b']}/roi", headers=owner_headers,
                      params={"conversions_from": "2026-03-01T00:00:00Z"}).json()
    assert (b_march["conversions"], b_march["cost_per_conversion"]) == ("0", None)
