"""The community identity API through the local gateway (real PostgreSQL, pooled tenants): search, the 360
profile, manual developers, organizations, accounts, erasure, roles, tenant isolation and bad input. Every answer
is checked against the OpenAPI document (the ``api`` fixture)."""
from __future__ import annotations

import uuid

import pytest

from funnel.community.identity import AccountIn
from tests.integration.community.conftest import COMMUNITY_POOL, PROBLEM
from tests.support.tenants import new_tenant


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _found(api, headers, **params) -> list[str]:
    answer = api.get("/v1/developers", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    return [d["developer_id"] for d in answer.json()["items"]]


def test_accounts_of_two_providers_with_one_email_are_one_developer(api, owner_headers, resolve):
    tag = _uid()
    github, = resolve(AccountIn("github", f"gh-{tag}", handle=f"octo{tag}", email=f"Ann.Lee+{tag}@Gmail.com",
                                display_name="Ann Lee"))
    discord, = resolve(AccountIn("discord", f"dc-{tag}", handle=f"ann{tag}", email="annlee@gmail.com",
                                 display_name="Ann Lee"))
    assert discord.developer_id == github.developer_id and discord.account_id != github.account_id
    profile = api.get(f"/v1/developers/{github.developer_id}", headers=owner_headers).json()
    assert {a["provider"] for a in profile["accounts"]} == {"github", "discord"}
    assert profile["current_developer_id"] == str(github.developer_id) and profile["developer"]["merged_into"] is None
    assert "annlee@gmail.com" in {i["value_normalized"] for i in profile["identifiers"]}
    listed = api.get("/v1/accounts", headers=owner_headers, params={"developer_id": str(github.developer_id)}).json()
    assert {a["account_id"] for a in listed["items"]} == {str(github.account_id), str(discord.account_id)}
    one = api.get(f"/v1/accounts/{discord.account_id}", headers=owner_headers).json()
    assert one["provider"] == "discord" and one["handle"] == f"ann{tag}"
    by_handle = api.get("/v1/accounts", headers=owner_headers, params={"q": f"@Octo{tag[:3]}"}).json()["items"]
    assert [a["account_id"] for a in by_handle] == [str(github.account_id)]
    identifiers = api.get(f"/v1/developers/{github.developer_id}/identifiers", headers=owner_headers).json()["items"]
    assert identifiers == profile["identifiers"]


def test_search_by_name_in_either_script_email_handle_org_and_tag(api, owner_headers, resolve):
    tag = _uid()
    org = api.post("/v1/organizations", headers=owner_headers,
                   json={"name": f"Kaisha {tag}", "domain_primary": f"https://www.Kaisha-{tag}.example/"}).json()
    assert org["domain_primary"] == f"kaisha-{tag}.example"
    kanji, = resolve(AccountIn("github", f"k-{tag}", handle=f"tyamada{tag}", email=f"taro.yamada.{tag}@gmail.com",
                               display_name="山田 太郎"))
    romaji, = resolve(AccountIn("x", f"r-{tag}", handle=f"hsuzuki{tag}", display_name="Hanako Suzuki"))
    api.patch(f"/v1/developers/{romaji.developer_id}", headers=owner_headers,
              json={"org_id": org["org_id"], "tags": [f"champion-{tag}"]}).raise_for_status()
    k, r = str(kanji.developer_id), str(romaji.developer_id)

    assert k in _found(api, owner_headers, q="山田")
    assert k in _found(api, owner_headers, q="Yamada")  # the account's name read from kanji
    assert r in _found(api, owner_headers, q="すずき はなこ")  # kana finds the romaji name
    assert _found(api, owner_headers, q=f"TaroYamada.{tag}@GMAIL.com") == [k]  # as identity normalises it
    assert _found(api, owner_headers, q=f"taro.yamada.{tag}") == [k]  # a part of the primary e-mail
    assert _found(api, owner_headers, q=f"@TYamada{tag[:4]}") == [k]  # the start of a handle
    assert _found(api, owner_headers, q=f"yamada{tag}") == []  # words match by prefix, not anywhere
    assert _found(api, owner_headers, q=f"kaisha {tag}") == [r]  # the organization's name
    assert _found(api, owner_headers, tag=f"champion-{tag}") == [r]
    assert _found(api, owner_headers, org_id=org["org_id"]) == [r]
    assert _found(api, owner_headers, q="山田", tag=f"champion-{tag}") == []
    assert _found(api, owner_headers, q=f"100%_{tag}") == []  # % and _ are literal


def test_pages_follow_the_cursor(api, owner_headers, resolve):
    tag = _uid()
    made = [r.developer_id for r in resolve(*[AccountIn("github", f"p-{tag}-{n}", handle=f"pager{tag}n{n}")
                                              for n in range(5)])]
    seen, cursor = [], None
    while True:
        params = {"q": f"pager{tag}", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/developers", headers=owner_headers, params=params).json()
        seen += [d["developer_id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(map(str, made)) and len(seen) == 5
    bad = api.get("/v1/developers", headers=owner_headers, params={"cursor": "bm90IGEgY3Vyc29y"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "cursor"]


def test_the_profile_has_recent_activities_stats_and_suggestions(api, owner_headers, resolve, add_activities):
    tag = _uid()
    one, = resolve(AccountIn("github", f"s-{tag}", handle=f"ktanaka{tag}", display_name="Keiko Tanaka"))
    other, = resolve(AccountIn("discord", f"s2-{tag}", handle=f"ktanaka{tag}", display_name="Keiko Tanaka"))
    assert one.developer_id != other.developer_id
    add_activities(one, ["star"] * 15 + ["fork"] * 10)
    profile = api.get(f"/v1/developers/{one.developer_id}", headers=owner_headers).json()
    assert len(profile["recent_activities"]) == 20
    times = [a["occurred_at"] for a in profile["recent_activities"]]
    assert times == sorted(times, reverse=True) and profile["recent_activities"][0]["action"] == "fork"
    assert profile["stats"]["total"] == 25 and profile["stats"]["last_activity_at"] == times[0]
    assert [(s["action"], s["count"]) for s in profile["stats"]["by_action"]] == [("star", 15), ("fork", 10)]
    [suggestion] = profile["open_suggestions"]
    assert {suggestion["developer"]["developer_id"], suggestion["other_developer"]["developer_id"]} == {
        str(one.developer_id), str(other.developer_id)}
    assert suggestion["evidence"] and 0 < suggestion["confidence"] < 1


def test_developers_are_created_by_hand_and_changed(api, owner_headers, resolve):
    tag = _uid()
    org = api.post("/v1/organizations", headers=owner_headers, json={"name": f"Org {tag}"}).json()
    plain = api.post("/v1/developers", headers=owner_headers,
                     json={"display_name": "Mei Sato", "primary_email": f"mei.{tag}@example.org",
                           "org_id": org["org_id"], "tags": ["vip", "vip", "speaker"]})
    assert plain.status_code == 201, plain.text
    assert plain.json()["tags"] == ["vip", "speaker"] and plain.json()["org_id"] == org["org_id"]
    assert api.get(f"/v1/organizations/{org['org_id']}", headers=owner_headers).json()["developer_count"] == 1

    taken = api.post("/v1/developers", headers=owner_headers, json={"primary_email": f"MEI.{tag}@example.org"})
    assert taken.status_code == 409 and taken.headers["content-type"].startswith(PROBLEM)

    # two accounts without evidence between them, created as one person: merged, logged
    made = api.post("/v1/developers", headers=owner_headers, json={
        "display_name": "Jun Mori", "tags": ["beta"],
        "accounts": [{"provider": "github", "external_user_id": f"m1-{tag}", "handle": f"jm{tag}"},
                     {"provider": "connpass", "external_user_id": f"m2-{tag}", "handle": f"mori{tag}"}]})
    assert made.status_code == 201, made.text
    developer_id = made.json()["developer_id"]
    assert made.json()["display_name"] == "Jun Mori" and made.json()["tags"] == ["beta"]
    profile = api.get(f"/v1/developers/{developer_id}", headers=owner_headers).json()
    assert {a["provider"] for a in profile["accounts"]} == {"github", "connpass"}
    assert [m["action"] for m in profile["merge_history"]] == ["merge"]

    # an account that already has its developer
    again = api.post("/v1/developers", headers=owner_headers, json={
        "display_name": "Someone", "accounts": [{"provider": "github", "external_user_id": f"m1-{tag}"}]})
    assert again.status_code == 409 and developer_id in again.json()["detail"]

    changed = api.patch(f"/v1/developers/{developer_id}", headers=owner_headers,
                        json={"display_name": "Jun Mori (森)", "consent_analytics": False, "org_id": org["org_id"]})
    assert changed.status_code == 200 and changed.json()["consent_analytics"] is False
    assert changed.json()["display_name"] == "Jun Mori (森)" and changed.json()["tags"] == ["beta"]
    no_org = api.patch(f"/v1/developers/{developer_id}", headers=owner_headers, json={"org_id": str(uuid.uuid4())})
    assert no_org.status_code == 422 and no_org.json()["errors"][0]["loc"] == ["body", "org_id"]
    dup = api.patch(f"/v1/developers/{developer_id}", headers=owner_headers,
                    json={"primary_email": f"mei.{tag}@example.org"})
    assert dup.status_code == 409
    null_consent = api.patch(f"/v1/developers/{developer_id}", headers=owner_headers, json={"consent_analytics": None})
    assert null_consent.status_code == 422 and null_consent.json()["errors"][0]["loc"] == ["body", "consent_analytics"]
    missing = api.patch(f"/v1/developers/{uuid.uuid4()}", headers=owner_headers, json={"tags": []})
    assert missing.status_code == 404


def test_organizations_are_unique_by_name(api, owner_headers):
    tag = _uid()
    first = api.post("/v1/organizations", headers=owner_headers,
                     json={"name": f"Acme {tag}", "domain_primary": f"ACME-{tag}.example", "attributes": {"x": 1}})
    assert first.status_code == 201 and first.json()["developer_count"] == 0
    assert first.json()["domain_primary"] == f"acme-{tag}.example"
    assert api.post("/v1/organizations", headers=owner_headers, json={"name": f"Acme {tag}"}).status_code == 409
    second = api.post("/v1/organizations", headers=owner_headers, json={"name": f"Beta {tag}"}).json()
    renamed = api.patch(f"/v1/organizations/{second['org_id']}", headers=owner_headers, json={"name": f"Acme {tag}"})
    assert renamed.status_code == 409
    ok = api.patch(f"/v1/organizations/{second['org_id']}", headers=owner_headers,
                   json={"name": f"Beta2 {tag}", "domain_primary": "beta.example"})
    assert ok.status_code == 200 and ok.json()["name"] == f"Beta2 {tag}"
    bad_domain = api.post("/v1/organizations", headers=owner_headers, json={"name": f"C {tag}", "domain_primary": "x"})
    assert bad_domain.status_code == 422 and bad_domain.json()["errors"][0]["loc"] == ["body", "domain_primary"]
    listed = api.get("/v1/organizations", headers=owner_headers, params={"q": tag}).json()["items"]
    assert [o["name"] for o in listed] == [f"Beta2 {tag}", f"Acme {tag}"]
    assert api.get(f"/v1/organizations/{uuid.uuid4()}", headers=owner_headers).status_code == 404


def test_erasure_removes_personal_data_and_keeps_the_counts(api, owner_headers, headers_for, resolve,
                                                            add_activities, tenant_conn):
    tag = _uid()
    person, = resolve(AccountIn("github", f"e-{tag}", handle=f"erase{tag}", email=f"erase.{tag}@erika-lab.de",
                                display_name="Erika Mustermann", profile_url=f"https://github.com/erase{tag}",
                                attributes={"location": "Tokyo", "phone": "090-1234-5678"}))
    earlier, = resolve(AccountIn("x", f"e2-{tag}", handle=f"erika{tag}", display_name="Erika Mustermann"))
    merged = api.post("/v1/merges", headers=owner_headers, json={
        "into_developer_id": str(person.developer_id), "from_developer_id": str(earlier.developer_id)}).json()
    add_activities(person, ["star", "comment", "comment"],
                   metadata={"email": f"erase.{tag}@erika-lab.de", "login": f"erase{tag}", "repo": "funnel/funnel"})
    before = api.get(f"/v1/developers/{person.developer_id}", headers=owner_headers).json()
    assert before["stats"]["total"] == 3 and len(before["accounts"]) == 2

    assert api.post(f"/v1/developers/{person.developer_id}/erase", headers=headers_for("member")).status_code == 403
    assert api.post(f"/v1/developers/{earlier.developer_id}/erase", headers=owner_headers).status_code == 409
    erased = api.post(f"/v1/developers/{person.developer_id}/erase", headers=owner_headers)
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["developers_erased"] == 2 and body["accounts_erased"] == 2 and body["activities_stripped"] == 3
    assert body["identifiers_deleted"] >= 2 and body["developer"]["erased_at"]
    assert body["developer"]["display_name"] is None and body["developer"]["primary_email"] is None

    after = api.get(f"/v1/developers/{person.developer_id}", headers=owner_headers).json()
    assert after["identifiers"] == [] and after["stats"] == before["stats"]
    for account in after["accounts"]:
        assert account["handle"] is None and account["email"] is None and account["display_name"] is None
        assert account["profile_url"] is None and account["attributes"] == {}
        assert account["external_user_id"].startswith("erased:")
    assert [a["metadata"] for a in after["recent_activities"]] == [{"repo": "funnel/funnel"}] * 3
    assert all(e["kind"] == "erased" for m in after["merge_history"] for e in m["evidence"])
    merged_one = api.get(f"/v1/developers/{earlier.developer_id}", headers=owner_headers).json()["developer"]
    assert merged_one["erased_at"] and merged_one["display_name"] is None
    with tenant_conn() as conn:
        text = conn.execute("SELECT string_agg(x::text, ' ') AS t FROM (SELECT to_jsonb(a) AS x FROM accounts a "
                            "UNION ALL SELECT to_jsonb(d) FROM developers d UNION ALL SELECT to_jsonb(l) "
                            "FROM developer_merge_logs l UNION ALL SELECT to_jsonb(s) "
                            "FROM developer_search_terms s) rows").fetchone()["t"]
    assert f"erase{tag}" not in text and "Mustermann" not in text and f"e-{tag}" not in text

    audit = api.get("/v1/audit-logs", headers=owner_headers,
                    params={"action": "developer.erase", "resource_id": str(person.developer_id)}).json()["items"]
    assert len(audit) == 1 and audit[0]["details"]["accounts_erased"] == 2
    assert api.post(f"/v1/developers/{person.developer_id}/erase", headers=owner_headers).status_code == 409

    # erased: out of search, not mergeable, not changeable, not unmergeable; the person returning is someone new
    assert str(person.developer_id) not in _found(api, owner_headers, q=f"erase{tag}")
    assert str(person.developer_id) in _found(api, owner_headers, include_erased="true", limit=200)
    other, = resolve(AccountIn("github", f"o-{tag}", handle=f"other{tag}"))
    into_erased = api.post("/v1/merges", headers=owner_headers, json={
        "into_developer_id": str(person.developer_id), "from_developer_id": str(other.developer_id)})
    assert into_erased.status_code == 409
    assert api.patch(f"/v1/developers/{person.developer_id}", headers=owner_headers,
                     json={"tags": ["x"]}).status_code == 409
    assert api.post(f"/v1/merges/{merged['merge_id']}/undo", headers=owner_headers).status_code == 409
    returning, = resolve(AccountIn("github", f"e-{tag}", handle=f"erase{tag}", email=f"erase.{tag}@erika-lab.de"))
    assert returning.developer_id != person.developer_id and returning.created


def test_roles(api, owner_headers, headers_for, resolve):
    tag = _uid()
    a, b = resolve(AccountIn("github", f"ra-{tag}"), AccountIn("x", f"rb-{tag}"))
    viewer = headers_for("viewer")
    assert api.get(f"/v1/developers/{a.developer_id}", headers=viewer).status_code == 200
    assert api.get("/v1/merge-suggestions", headers=viewer).status_code == 200
    body = {"into_developer_id": str(a.developer_id), "from_developer_id": str(b.developer_id)}
    assert api.post("/v1/merges", headers=viewer, json=body).status_code == 403
    assert api.post("/v1/developers", headers=viewer, json={"display_name": "No"}).status_code == 403
    assert api.post("/v1/merges", headers=headers_for("member"), json=body).status_code == 201
    assert api.get("/v1/developers").status_code == 401


def test_bad_input_is_a_422_naming_the_field(api, owner_headers, resolve):
    unknown = api.post("/v1/developers", headers=owner_headers, json={"display_name": "A", "nickname": "a"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["body", "nickname"]
    assert api.get("/v1/developers/not-a-uuid", headers=owner_headers).status_code == 422
    assert api.post("/v1/merges", headers=owner_headers, json={
        "into_developer_id": "nope", "from_developer_id": str(uuid.uuid4())}).status_code == 422
    one, = resolve(AccountIn("github", f"self-{_uid()}"))
    itself = api.post("/v1/merges", headers=owner_headers, json={
        "into_developer_id": str(one.developer_id), "from_developer_id": str(one.developer_id)})
    assert itself.status_code == 422 and itself.json()["errors"][0]["loc"] == ["body", "from_developer_id"]
    empty = api.post("/v1/developers", headers=owner_headers, json={})
    assert empty.status_code == 422
    bad_provider = api.post("/v1/developers", headers=owner_headers, json={
        "accounts": [{"provider": "Not A Provider!", "external_user_id": "1"}]})
    assert bad_provider.status_code == 422
    assert bad_provider.json()["errors"][0]["loc"] == ["body", "accounts", 0, "provider"]
    assert api.get("/v1/merge-suggestions", headers=owner_headers,
                   params={"min_confidence": 2}).status_code == 422


@pytest.fixture(scope="module")
def neighbours(runtime):
    return new_tenant(pool=COMMUNITY_POOL), new_tenant(pool=COMMUNITY_POOL)


def test_pooled_tenants_cannot_see_merge_or_reference_each_other(api, neighbours):
    from funnel import db
    from funnel.community import identity

    mine, theirs = neighbours
    tag = _uid()
    with db.tenant_transaction(theirs.tenant_id) as conn:
        t1, t2 = identity.resolve_accounts(conn, [
            AccountIn("github", f"n1-{tag}", handle=f"neighbour{tag}", display_name="Nao Kimura"),
            AccountIn("discord", f"n2-{tag}", handle=f"neighbour{tag}", display_name="Nao Kimura")])
    their_org = api.post("/v1/organizations", headers=theirs.headers, json={"name": f"Theirs {tag}"}).json()
    [their_suggestion] = api.get("/v1/merge-suggestions", headers=theirs.headers,
                                 params={"developer_id": str(t1.developer_id)}).json()["items"]
    with db.tenant_transaction(mine.tenant_id) as conn:
        m1, = identity.resolve_accounts(conn, [AccountIn("github", f"n1-{tag}", handle=f"neighbour{tag}")])
    assert m1.developer_id not in (t1.developer_id, t2.developer_id)  # the same external id, another tenant

    h = mine.headers
    assert _found(api, h, q=f"neighbour{tag}") == [str(m1.developer_id)]
    assert api.get(f"/v1/developers/{t1.developer_id}", headers=h).status_code == 404
    assert api.get(f"/v1/developers/{t1.developer_id}/identifiers", headers=h).status_code == 404
    assert api.get(f"/v1/accounts/{t1.account_id}", headers=h).status_code == 404
    assert api.get(f"/v1/organizations/{their_org['org_id']}", headers=h).status_code == 404
    assert api.get("/v1/merge-suggestions", headers=h, params={"developer_id": str(t1.developer_id)}).json()[
        "items"] == []
    assert api.post(f"/v1/merge-suggestions/{their_suggestion['suggestion_id']}/accept", headers=h).status_code == 404
    assert api.post(f"/v1/merge-suggestions/{their_suggestion['suggestion_id']}/reject", headers=h).status_code == 404
    merge = api.post("/v1/merges", headers=h, json={"into_developer_id": str(m1.developer_id),
                                                     "from_developer_id": str(t1.developer_id)})
    assert merge.status_code == 422 and merge.json()["errors"][0]["loc"] == ["body", "from_developer_id"]
    theirs_merged = api.post("/v1/merges", headers=theirs.headers, json={
        "into_developer_id": str(t1.developer_id), "from_developer_id": str(t2.developer_id)}).json()
    assert api.post(f"/v1/merges/{theirs_merged['merge_id']}/undo", headers=h).status_code == 404
    assert api.get("/v1/merges", headers=h, params={"developer_id": str(t1.developer_id)}).json()["items"] == []
    with_their_org = api.post("/v1/developers", headers=h, json={"display_name": "X", "org_id": their_org["org_id"]})
    assert with_their_org.status_code == 422 and with_their_org.json()["errors"][0]["loc"] == ["body", "org_id"]
    assert api.patch(f"/v1/developers/{t1.developer_id}", headers=h, json={"tags": ["x"]}).status_code == 404
    assert api.post(f"/v1/developers/{t1.developer_id}/erase", headers=h).status_code == 404
    same_name = api.post("/v1/organizations", headers=h, json={"name": f"Theirs {tag}"})
    assert same_name.status_code == 201  # names are unique per tenant only
