"""The README's curl walkthrough, through the local API gateway (template.yaml routes, v2 events)."""
from __future__ import annotations

from tests.support.tenants import PASSWORD, new_tenant


def test_readme_walkthrough_login_key_me_and_audit_log(runtime, api):
    handle = new_tenant()
    login = api.post("/v1/auth/login", json={"email": handle.owner_email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    key = api.post("/v1/api-keys", headers=bearer, json={"name": "walkthrough"})
    assert key.status_code == 201
    me = api.get("/v1/me", headers={"X-Api-Key": key.json()["key"]})
    assert me.status_code == 200 and me.json()["email"] == handle.owner_email
    audit = api.get("/v1/audit-logs", headers=bearer)
    assert audit.status_code == 200
    assert {"auth.login", "api_key.create"} <= {e["action"] for e in audit.json()["items"]}
    assert api.get("/openapi.json").json()["info"]["title"] == "Funnel API"
    problem = api.get("/v1/me")
    assert problem.status_code == 401 and problem.headers["content-type"] == "application/problem+json"
