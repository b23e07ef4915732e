"""Campaigns, budget entries and resources through the API against real PostgreSQL (a pooled tenant): CRUD, the
name conflict (409), dates and money refused (422), exact amounts per currency, pages and filters, roles, and a
neighbour tenant in the same pool whose campaign ids are not found here (404 in a path, 422 in a body)."""
from __future__ import annotations

import uuid

import pytest

from tests.integration.community.conftest import COMMUNITY_POOL, PROBLEM
from tests.support.tenants import new_tenant


def name() -> str:
    return f"Campaign {uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def neighbour(runtime):
    return new_tenant(pool=COMMUNITY_POOL)


def create(api, headers, **fields) -> dict:
    answer = api.post("/v1/campaigns", headers=headers, json={"name": name(), **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_campaign_crud_with_utm_attributes(api, owner_headers):
    body = {"name": name(), "channel": "event", "start_date": "2026-04-01", "end_date": "2026-04-30",
            "budget_total": "500000", "attributes": {"utm_source": "connpass", "utm_medium": "event",
                                                     "utm_campaign": "spring-meetup", "owner": "devrel"}}
    answer = api.post("/v1/campaigns", headers=owner_headers, json=body)
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert (made["currency"], made["budget_total"], made["spent"]) == ("JPY", "500000", [])
    assert made["attributes"] == body["attributes"]
    campaign_id = made["campaign_id"]
    assert api.get(f"/v1/campaigns/{campaign_id}", headers=owner_headers).json() == made

    changed = api.patch(f"/v1/campaigns/{campaign_id}", headers=owner_headers,
                        json={"channel": "meetup", "end_date": "2026-05-15"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["channel"], changed.json()["end_date"], changed.json()["start_date"]) == (
        "meetup", "2026-05-15", "2026-04-01")

    assert api.delete(f"/v1/campaigns/{campaign_id}", headers=owner_headers).status_code == 204
    assert api.get(f"/v1/campaigns/{campaign_id}", headers=owner_headers).status_code == 404
    assert api.delete(f"/v1/campaigns/{campaign_id}", headers=owner_headers).status_code == 404


def test_names_are_unique_and_dates_ordered(api, owner_headers):
    first = create(api, owner_headers)
    again = api.post("/v1/campaigns", headers=owner_headers, json={"name": first["name"]})
    assert again.status_code == 409 and again.headers["content-type"].startswith(PROBLEM)
    other = create(api, owner_headers)
    renamed = api.patch(f"/v1/campaigns/{other['campaign_id']}", headers=owner_headers, json={"name": first["name"]})
    assert renamed.status_code == 409

    backwards = api.post("/v1/campaigns", headers=owner_headers,
                         json={"name": name(), "start_date": "2026-05-01", "end_date": "2026-04-30"})
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["loc"] == ["body", "end_date"]
    dated = create(api, owner_headers, start_date="2026-05-01")
    early_end = api.patch(f"/v1/campaigns/{dated['campaign_id']}", headers=owner_headers,
                          json={"end_date": "2026-04-01"})
    assert early_end.status_code == 422 and early_end.json()["errors"][0]["loc"] == ["body", "end_date"]

    for bad in ({"currency": "XYZ"}, {"currency": "JP"}, {"budget_total": "-1"}, {"budget_total": 10.5},
                {"budget_total": "100.5"}, {"unknown": 1}):
        answer = api.post("/v1/campaigns", headers=owner_headers, json={"name": name(), **bad})
        assert answer.status_code == 422, (bad, answer.text)
    assert create(api, owner_headers, currency="usd", budget_total="1999.99")["currency"] == "USD"


def test_budget_entries_are_exact_and_totalled_per_currency(api, owner_headers):
    campaign = create(api, owner_headers, currency="JPY")
    path = f"/v1/campaigns/{campaign['campaign_id']}/budgets"
    entries = [{"category": "ad", "amount": "120000", "spent_at": "2026-04-02", "memo": "X ads"},
               {"category": "venue", "amount": 80000, "spent_at": "2026-04-10", "source": "form"},
               {"category": "tool", "amount": "0.10", "currency": "USD", "spent_at": "2026-04-11"},
               {"category": "tool", "amount": "0.20", "currency": "USD", "spent_at": "2026-04-12"},
               {"category": "other", "amount": "-5000", "spent_at": "2026-04-20", "memo": "refund"}]
    made = []
    for entry in entries:
        answer = api.post(path, headers=owner_headers, json=entry)
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    assert [m["amount"] for m in made] == ["120000", "80000", "0.10", "0.20", "-5000"]
    assert (made[0]["currency"], made[0]["source"], made[1]["source"]) == ("JPY", "api", "form")
    # 0.1 + 0.2 is 0.3 exactly (a float would say 0.30000000000000004); JPY and USD are never added
    spent = api.get(f"/v1/campaigns/{campaign['campaign_id']}", headers=owner_headers).json()["spent"]
    assert spent == [{"currency": "JPY", "amount": "195000"}, {"currency": "USD", "amount": "0.30"}]

    for bad in ({"amount": 0.1}, {"amount": "12.5"}, {"amount": "1.001", "currency": "USD"},
                {"category": "food"}, {"currency": "ZZZ"}, {"spent_at": None}):
        answer = api.post(path, headers=owner_headers, json={**entries[0], **bad})
        assert answer.status_code == 422, (bad, answer.text)

    page = api.get(path, headers=owner_headers, params={"limit": 2}).json()
    assert [b["budget_id"] for b in page["items"]] == [made[4]["budget_id"], made[3]["budget_id"]]
    rest = api.get(path, headers=owner_headers, params={"limit": 10, "cursor": page["next_cursor"]}).json()
    assert [b["budget_id"] for b in rest["items"]] == [m["budget_id"] for m in made[2::-1]]
    assert rest["next_cursor"] is None
    usd = api.get(path, headers=owner_headers, params={"currency": "usd"}).json()["items"]
    assert {b["amount"] for b in usd} == {"0.10", "0.20"}
    april_early = api.get(path, headers=owner_headers, params={"spent_from": "2026-04-01",
                                                               "spent_to": "2026-04-11"}).json()["items"]
    assert {b["category"] for b in april_early} == {"ad", "venue"}

    budget_path = f"{path}/{made[0]['budget_id']}"
    changed = api.patch(budget_path, headers=owner_headers, json={"amount": "125000.00", "memo": "X ads, final"})
    assert changed.status_code == 200 and changed.json()["amount"] == "125000.00"
    assert api.patch(budget_path, headers=owner_headers, json={"amount": "1.5"}).status_code == 422
    assert api.delete(budget_path, headers=owner_headers).status_code == 204
    assert api.get(budget_path, headers=owner_headers).status_code == 404


def test_resources_crud_filters_and_urls(api, owner_headers):
    campaign = create(api, owner_headers)
    external = uuid.uuid4().hex
    body = {"category": "blog", "group_key": "tutorials", "title": "Getting started", "url": "Example.COM/start",
            "external_id": external, "campaign_id": campaign["campaign_id"]}
    answer = api.post("/v1/resources", headers=owner_headers, json=body)
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert (made["url"], made["campaign_id"]) == ("https://example.com/start", campaign["campaign_id"])
    assert api.post("/v1/resources", headers=owner_headers, json=body).status_code == 409
    for bad in ({"url": "ftp://example.com/x"}, {"url": "javascript:alert(1)"}, {"campaign_id": str(uuid.uuid4())}):
        assert api.post("/v1/resources", headers=owner_headers, json={**body, "external_id": None, **bad}
                        ).status_code == 422, bad
    other = api.post("/v1/resources", headers=owner_headers,
                     json={"category": "event", "title": "Meetup", "group_key": "tutorials"}).json()

    listed = api.get("/v1/resources", headers=owner_headers,
                     params={"campaign_id": campaign["campaign_id"]}).json()["items"]
    assert [r["resource_id"] for r in listed] == [made["resource_id"]]
    grouped = api.get("/v1/resources", headers=owner_headers, params={"group_key": "tutorials", "limit": 1}).json()
    assert grouped["items"][0]["resource_id"] == other["resource_id"] and grouped["next_cursor"]
    assert api.get("/v1/resources", headers=owner_headers, params={"cursor": "nonsense"}).status_code == 422

    changed = api.patch(f"/v1/resources/{other['resource_id']}", headers=owner_headers,
                        json={"campaign_id": campaign["campaign_id"], "url": "http://example.org/meetup"})
    assert changed.status_code == 200 and changed.json()["url"] == "http://example.org/meetup"
    # deleting the campaign unlinks its resources
    assert api.delete(f"/v1/campaigns/{campaign['campaign_id']}", headers=owner_headers).status_code == 204
    assert api.get(f"/v1/resources/{made['resource_id']}", headers=owner_headers).json()["campaign_id"] is None
    assert api.delete(f"/v1/resources/{made['resource_id']}", headers=owner_headers).status_code == 204
    assert api.get(f"/v1/resources/{made['resource_id']}", headers=owner_headers).status_code == 404


def test_campaign_lists_and_filters(api, owner_headers):
    tag = uuid.uuid4().hex[:6]
    made = [create(api, owner_headers, name=f"List {tag} {n}", channel=f"ch-{tag}",
                   start_date="2026-06-01", end_date=f"2026-06-{10 + n}") for n in range(3)]
    page = api.get("/v1/campaigns", headers=owner_headers, params={"channel": f"ch-{tag}", "limit": 2}).json()
    assert [c["campaign_id"] for c in page["items"]] == [made[2]["campaign_id"], made[1]["campaign_id"]]
    rest = api.get("/v1/campaigns", headers=owner_headers,
                   params={"channel": f"ch-{tag}", "cursor": page["next_cursor"]}).json()
    assert [c["campaign_id"] for c in rest["items"]] == [made[0]["campaign_id"]] and rest["next_cursor"] is None
    active = api.get("/v1/campaigns", headers=owner_headers, params={"q": f"list {tag}", "active_on": "2026-06-11"})
    assert {c["campaign_id"] for c in active.json()["items"]} == {made[1]["campaign_id"], made[2]["campaign_id"]}


def test_roles_readers_read_writers_write(api, owner_headers, headers_for):
    campaign = create(api, owner_headers)
    viewer = headers_for("viewer")
    assert api.get(f"/v1/campaigns/{campaign['campaign_id']}", headers=viewer).status_code == 200
    assert api.post("/v1/campaigns", headers=viewer, json={"name": name()}).status_code == 403
    assert api.post(f"/v1/campaigns/{campaign['campaign_id']}/budgets", headers=viewer,
                    json={"category": "ad", "amount": "1", "spent_at": "2026-01-01"}).status_code == 403
    assert api.post("/v1/resources", headers=viewer, json={"category": "blog"}).status_code == 403
    member = headers_for("member")
    assert api.post("/v1/campaigns", headers=member, json={"name": name()}).status_code == 201


def test_a_neighbours_campaign_is_not_found_here(api, owner_headers, neighbour):
    theirs = create(api, neighbour.headers)
    their_id = theirs["campaign_id"]
    assert api.get(f"/v1/campaigns/{their_id}", headers=owner_headers).status_code == 404
    assert api.patch(f"/v1/campaigns/{their_id}", headers=owner_headers, json={"channel": "x"}).status_code == 404
    assert api.delete(f"/v1/campaigns/{their_id}", headers=owner_headers).status_code == 404
    assert api.get(f"/v1/campaigns/{their_id}/roi", headers=owner_headers).status_code == 404
    assert api.get(f"/v1/campaigns/{their_id}/budgets", headers=owner_headers).status_code == 404
    budget = api.post(f"/v1/campaigns/{their_id}/budgets", headers=owner_headers,
                      json={"category": "ad", "amount": "100", "spent_at": "2026-01-01"})
    assert budget.status_code == 404
    resource = api.post("/v1/resources", headers=owner_headers, json={"category": "blog", "campaign_id": their_id})
    assert resource.status_code == 422 and resource.json()["errors"][0]["loc"] == ["body", "campaign_id"]
    mine = api.post("/v1/resources", headers=owner_headers, json={"category": "blog"}).json()
    relinked = api.patch(f"/v1/resources/{mine['resource_id']}", headers=owner_headers, json={"campaign_id": their_id})
    assert relinked.status_code == 422
    # the same name is free in another tenant
    assert api.post("/v1/campaigns", headers=owner_headers, json={"name": theirs["name"]}).status_code == 201
    assert api.get(f"/v1/campaigns/{their_id}", headers=neighbour.headers).json()["spent"] == []
