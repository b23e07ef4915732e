"""The plugins API: admins create, list, read, change and delete plugins; secrets are stored encrypted and never
answered (only whether each is set and its last characters; a generated webhook secret once, in the create
answer); configuration is validated per kind; runs and archived events are listed a page at a time; another
tenant's plugins are not found."""
from __future__ import annotations

import uuid

import pytest

from tests.integration.community.conftest import COMMUNITY_POOL, PROBLEM
from tests.support.plugin_webhooks import create_plugin, github_delivery, github_sample
from tests.support.tenants import new_tenant

TOKEN = "github_pat_11AAAAAAA0abcdefghijklmnopqrstuvwxyz"
SECRET = "my-webhook-secret-for-github-0001"


def test_secrets_are_stored_encrypted_and_never_answered(api, owner_headers, tenant_conn):
    plugin = create_plugin(api, owner_headers, kind="github", config={"repositories": ["funnel-demo/sdk"]},
                           secrets={"webhook_secret": SECRET, "token": TOKEN})
    assert plugin["webhook_secret"] is None  # given, so not shown back
    assert plugin["secrets"] == {"webhook_secret": {"set": True, "hint": "…0001"},
                                 "token": {"set": True, "hint": "…wxyz"}}
    assert plugin["has_secret"] is True
    for answer in (api.get(f"/v1/plugins/{plugin['plugin_id']}", headers=owner_headers),
                   api.get("/v1/plugins", headers=owner_headers, params={"limit": 200})):
        assert answer.status_code == 200
        assert SECRET not in answer.text and TOKEN not in answer.text
    with tenant_conn() as conn:
        stored = conn.execute("SELECT secrets_encrypted, config::text AS config FROM plugins WHERE plugin_id = %s",
                              (plugin["plugin_id"],)).fetchone()
        logged = conn.execute("SELECT details::text AS details FROM audit_logs WHERE resource_id = %s",
                              (plugin["plugin_id"],)).fetchall()
    assert stored["secrets_encrypted"].startswith("v1:")
    for text in (stored["secrets_encrypted"], stored["config"], *(row["details"] for row in logged)):
        assert SECRET not in text and TOKEN not in text


def test_a_webhook_secret_is_generated_and_shown_once(api, owner_headers):
    plugin = create_plugin(api, owner_headers, kind="webhook")
    assert len(plugin["webhook_secret"]) >= 32 and plugin["has_secret"]
    again = api.get(f"/v1/plugins/{plugin['plugin_id']}", headers=owner_headers).json()
    assert "webhook_secret" not in again and plugin["webhook_secret"] not in str(again)
    assert again["webhook_url"] == plugin["webhook_url"]
    assert "/v1/webhooks/plugins/" in again["webhook_url"]


def test_changes_keep_what_is_not_given_and_a_null_secret_is_removed(api, owner_headers):
    plugin = create_plugin(api, owner_headers, kind="github", secrets={"webhook_secret": SECRET, "token": TOKEN})
    path = f"/v1/plugins/{plugin['plugin_id']}"
    changed = api.patch(path, headers=owner_headers, json={"name": "Renamed", "enabled": False,
                                                           "config": {"repositories": ["octo/one", "octo/two"]},
                                                           "secrets": {"token": None}})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["enabled"], body["config"]["repositories"]) == ("Renamed", False,
                                                                               ["octo/one", "octo/two"])
    assert list(body["secrets"]) == ["webhook_secret"] and body["key"] == plugin["key"]
    rotated = api.patch(path, headers=owner_headers, json={"secrets": {"webhook_secret": "a-brand-new-secret-9999"}})
    assert rotated.json()["secrets"]["webhook_secret"]["hint"] == "…9999"


@pytest.mark.parametrize(("body", "loc"), [
    ({"kind": "github", "config": {"repositories": ["not a repo"]}}, ["body", "config", "repositories", 0]),
    ({"kind": "github", "config": {"repos": ["octo/one"]}}, ["body", "config", "repos"]),
    ({"kind": "webhook", "config": {"source": "Not Valid"}}, ["body", "config", "source"]),
    ({"kind": "webhook", "secrets": {"token": "x" * 20}}, ["body", "secrets", "token"]),
    ({"kind": "webhook", "secrets": {"webhook_secret": "short"}}, ["body", "secrets", "webhook_secret"]),
    ({"kind": "gitlab"}, ["body", "kind"]),
    ({"kind": "webhook", "key": "Has Spaces"}, ["body", "key"]),
])
def test_bad_plugins_are_refused_naming_the_field(api, owner_headers, body, loc):
    answer = api.post("/v1/plugins", headers=owner_headers,
                      json={"key": f"k-{uuid.uuid4().hex[:8]}", "name": "Bad", **body})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["errors"][0]["loc"] == loc


def test_a_key_is_unique_per_tenant(api, owner_headers):
    plugin = create_plugin(api, owner_headers, kind="webhook")
    again = api.post("/v1/plugins", headers=owner_headers, json={"key": plugin["key"], "name": "Twin",
                                                                 "kind": "github"})
    assert again.status_code == 422 and again.json()["errors"][0]["loc"] == ["body", "key"]
    other = create_plugin(api, owner_headers, kind="webhook")
    renamed = api.patch(f"/v1/plugins/{other['plugin_id']}", headers=owner_headers, json={"key": plugin["key"]})
    assert renamed.status_code == 422


def test_only_admins_manage_plugins(api, owner_headers, headers_for):
    plugin = create_plugin(api, owner_headers, kind="webhook")
    for role in ("member", "viewer"):
        headers = headers_for(role)
        assert api.get("/v1/plugins", headers=headers).status_code == 403
        assert api.get(f"/v1/plugins/{plugin['plugin_id']}", headers=headers).status_code == 403
        assert api.post("/v1/plugins", headers=headers, json={"key": "nope", "name": "x",
                                                               "kind": "webhook"}).status_code == 403
        assert api.delete(f"/v1/plugins/{plugin['plugin_id']}", headers=headers).status_code == 403
    admin = headers_for("admin")
    assert api.get(f"/v1/plugins/{plugin['plugin_id']}/runs", headers=admin).status_code == 200


def test_runs_and_archived_events_are_listed_a_page_at_a_time(api, owner_headers):
    plugin = create_plugin(api, owner_headers, kind="github")
    raws = [github_delivery(api, plugin["webhook_url"], "ping", {**github_sample("ping"), "hook_id": n},
                            plugin["webhook_secret"]).json()["raw_id"] for n in range(3)]
    path = f"/v1/plugins/{plugin['plugin_id']}"
    first = api.get(f"{path}/events", headers=owner_headers, params={"limit": 2}).json()
    second = api.get(f"{path}/events", headers=owner_headers,
                     params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [e["raw_id"] for e in first["items"] + second["items"]] == raws[::-1]
    assert second["next_cursor"] is None
    event = first["items"][0]
    assert event["event_type"] == "ping" and "payload" not in event and len(event["preview"]) <= 200
    detail = api.get(f"{path}/events/{event['raw_id']}", headers=owner_headers).json()
    assert detail["payload"]["hook_id"] == 2
    runs = api.get(f"{path}/runs", headers=owner_headers, params={"limit": 2}).json()
    assert len(runs["items"]) == 2 and runs["next_cursor"]
    assert {r["trigger"] for r in runs["items"]} == {"webhook"}
    filtered = api.get(f"{path}/events", headers=owner_headers, params={"event_type": "star"}).json()
    assert filtered["items"] == []


def test_a_webhook_plugin_does_not_pull(api, owner_headers):
    plugin = create_plugin(api, owner_headers, kind="webhook")
    answer = api.post(f"/v1/plugins/{plugin['plugin_id']}/runs", headers=owner_headers)
    assert answer.status_code == 409 and answer.headers["content-type"].startswith(PROBLEM)
    github = create_plugin(api, owner_headers, kind="github")  # no repositories
    assert api.post(f"/v1/plugins/{github['plugin_id']}/runs", headers=owner_headers).status_code == 409


def test_deleting_a_plugin_takes_its_runs_and_events(api, owner_headers, tenant_conn):
    plugin = create_plugin(api, owner_headers, kind="github")
    github_delivery(api, plugin["webhook_url"], "ping", github_sample("ping"), plugin["webhook_secret"])
    path = f"/v1/plugins/{plugin['plugin_id']}"
    assert api.delete(path, headers=owner_headers).status_code == 204
    assert api.get(path, headers=owner_headers).status_code == 404
    assert api.delete(path, headers=owner_headers).status_code == 404
    with tenant_conn() as conn:
        left = conn.execute("SELECT (SELECT count(*) FROM plugin_runs WHERE plugin_id = %(p)s) + "
                            "(SELECT count(*) FROM plugin_events_raw WHERE plugin_id = %(p)s) AS n",
                            {"p": plugin["plugin_id"]}).fetchone()["n"]
    assert left == 0
    # the URL of a deleted plugin is no webhook any more
    assert github_delivery(api, plugin["webhook_url"], "ping", github_sample("ping"),
                           plugin["webhook_secret"]).status_code == 404


def test_another_tenants_plugins_are_not_found(api, owner_headers):
    mine = create_plugin(api, owner_headers, kind="webhook")
    other = new_tenant(pool=COMMUNITY_POOL)
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/runs"), ("GET", "/events"),
                           ("POST", "/runs")):
        answer = api.request(method, f"/v1/plugins/{mine['plugin_id']}{suffix}", headers=other.headers,
                             json={"name": "taken"} if method == "PATCH" else None)
        assert answer.status_code == 404, (method, suffix, answer.text)
    listed = api.get("/v1/plugins", headers=other.headers).json()
    assert listed["items"] == []
