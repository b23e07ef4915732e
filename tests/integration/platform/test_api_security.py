"""API core through the real app: auth, tokens, tenant isolation, bad input, idempotency, roles."""
from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from fastapi.testclient import TestClient

from funnel import db
from funnel.api.app import create_app
from funnel.platform import runs, tokens
from funnel.platform.secrets import get_secret
from funnel.settings import get_settings
from tests.support.tenants import PASSWORD, new_tenant, row_count

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def client(runtime):
    return TestClient(create_app(), client=("203.0.113.7", 50000))


@pytest.fixture(scope="module")
def two_tenants(runtime):
    return new_tenant(), new_tenant()


def _resources_of(client, handle) -> dict[str, str]:
    """One resource of every type the platform API exposes, owned by ``handle``'s tenant."""
    user = client.post("/v1/users", headers=handle.headers, json={"email": f"{uuid.uuid4().hex[:8]}@example.com"})
    key = client.post("/v1/api-keys", headers=handle.headers, json={"name": "k"})
    prompt = client.post("/v1/prompts", headers=handle.headers,
                         json={"step": "write_article", "content": "Hello {{name}}", "variables": ["name"]})
    with db.tenant_transaction(handle.tenant_id) as conn:
        run = runs.create_run(conn, "test", {}, handle.owner_id, 1)
    return {"user": user.json()["id"], "api_key": key.json()["id"], "prompt": str(prompt.json()["id"]),
            "run": str(run["id"])}


def test_every_resource_of_another_tenant_is_404(client, two_tenants):
    owner, intruder = two_tenants
    ids = _resources_of(client, owner)
    attempts = [
        ("GET", f"/v1/users/{ids['user']}", None),
        ("PATCH", f"/v1/users/{ids['user']}", {"role": "viewer"}),
        ("DELETE", f"/v1/api-keys/{ids['api_key']}", None),
        ("POST", f"/v1/prompts/{ids['prompt']}/activate", None),
        ("GET", f"/v1/runs/{ids['run']}", None),
        ("GET", f"/v1/runs/{ids['run']}/steps", None),
        ("GET", f"/v1/runs/{ids['run']}/artifacts", None),
    ]
    for method, path, body in attempts:
        response = client.request(method, path, headers=intruder.headers, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == PROBLEM
    listed = client.get("/v1/users", headers=intruder.headers).json()["items"]
    assert ids["user"] not in {u["id"] for u in listed}
    assert client.get(f"/v1/users/{ids['user']}", headers=owner.headers).status_code == 200


def _forge(claims: dict, secret: str | None = None, kid: str = "k1") -> str:
    key = get_secret(get_settings().jwt_secret_id)
    return jwt.encode(claims, secret or key["secret"], algorithm="HS256", headers={"kid": key["kid"]})


def test_expired_tampered_and_wrong_tenant_tokens_get_401(client, two_tenants):
    owner, other = two_tenants
    now = int(time.time())
    base = {"sub": owner.owner_id, "tid": owner.tenant_id, "typ": "access", "iss": "funnel", "iat": now - 100}
    expired = _forge({**base, "exp": now - 10})
    header, payload, signature = owner.access_token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    wrong_tenant = _forge({**base, "tid": other.tenant_id, "exp": now + 600})
    wrong_key = _forge({**base, "exp": now + 600}, secret="not-the-signing-key-but-long-enough-for-hs256")
    refresh_as_access = owner.refresh_token
    for token in (expired, tampered, wrong_tenant, wrong_key, refresh_as_access, "garbage"):
        response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == PROBLEM
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me", headers={"X-Api-Key": "fnl_000000000000_nope"}).status_code == 401
    assert client.get("/v1/me", headers=owner.headers).json()["email"] == owner.owner_email


def test_refresh_issues_a_working_access_token(client, two_tenants):
    owner, _ = two_tenants
    fresh = client.post("/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert fresh.status_code == 200
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"}).status_code == 200
    assert client.post("/v1/auth/refresh", json={"refresh_token": owner.access_token}).status_code == 401


def test_bad_input_gets_problem_responses_and_changes_nothing(client, two_tenants):
    owner, _ = two_tenants
    before = row_count(owner, "audit_logs")
    cases = [
        (client.post, "/v1/users", {"json": {"email": 42}}, 422),
        (client.post, "/v1/users", {"json": {"email": "a@example.com", "admin": True}}, 422),
        (client.post, "/v1/users", {"json": {"email": "a@example.com", "role": "god"}}, 422),
        (client.get, "/v1/users/not-a-uuid", {}, 422),
        (client.post, "/v1/api-keys", {"content": b'{"name": "x"', "headers": {"content-type": "application/json"}},
         400),
        (client.post, "/v1/api-keys", {"content": b"name=x", "headers": {"content-type": "text/html"}}, 415),
        (client.post, "/v1/api-keys", {"json": {"name": "x" * (2 * 1024 * 1024)}}, 413),
        (client.get, "/v1/audit-logs?limit=100000", {}, 422),
        (client.get, "/v1/audit-logs?cursor=%%%", {}, 422),
    ]
    for call, path, kwargs, status in cases:
        headers = {**owner.headers, **kwargs.pop("headers", {})}
        response = call(path, headers=headers, **kwargs)
        assert response.status_code == status, (path, response.status_code, response.text[:300])
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == status
    assert row_count(owner, "audit_logs") == before


def test_idempotency_key_replays_the_first_response(client, two_tenants):
    owner, _ = two_tenants
    headers = {**owner.headers, "Idempotency-Key": uuid.uuid4().hex}
    body = {"email": f"idem-{uuid.uuid4().hex[:6]}@example.com", "role": "viewer"}
    first = client.post("/v1/users", headers=headers, json=body)
    again = client.post("/v1/users", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == first.json()["id"]
    different = client.post("/v1/users", headers=headers, json={**body, "role": "admin"})
    assert different.status_code == 422
    users = client.get("/v1/users", headers=owner.headers, params={"limit": 200}).json()["items"]
    assert sum(u["email"] == body["email"] for u in users) == 1


def test_api_key_is_shown_once_stored_hashed_and_revocable(client, two_tenants):
    owner, _ = two_tenants
    created = client.post("/v1/api-keys", headers=owner.headers, json={"name": "ci", "scope": "read"}).json()
    key = created["key"]
    listed = client.get("/v1/api-keys", headers=owner.headers).json()["items"]
    assert all("key" not in item and "hashed_key" not in item for item in listed)
    with db.tenant_transaction(owner.tenant_id) as conn:
        stored = conn.execute("SELECT hashed_key FROM api_keys WHERE id = %s", (created["id"],)).fetchone()
    assert stored["hashed_key"] != key and len(stored["hashed_key"]) == 64
    me = client.get("/v1/me", headers={"X-Api-Key": key}).json()
    assert me["effective_role"] == "viewer" and me["api_key_id"] == created["id"]
    read_only = client.post("/v1/api-keys", headers={"X-Api-Key": key}, json={"name": "nope"})
    assert read_only.status_code == 403
    assert client.delete(f"/v1/api-keys/{created['id']}", headers=owner.headers).status_code == 200
    assert client.get("/v1/me", headers={"X-Api-Key": key}).status_code == 401


def test_roles_gate_user_management_and_the_last_owner_stays(client, two_tenants):
    owner, _ = two_tenants
    invited = client.post("/v1/users", headers=owner.headers,
                          json={"email": f"m-{uuid.uuid4().hex[:6]}@example.com", "role": "member"}).json()
    accepted = client.post("/v1/auth/accept-invite", json={"token": invited["invite_token"], "password": PASSWORD})
    assert accepted.status_code == 200
    member = client.post("/v1/auth/login", json={"email": invited["email"], "password": PASSWORD}).json()
    member_headers = {"Authorization": f"Bearer {member['access_token']}"}
    assert client.post("/v1/users", headers=member_headers, json={"email": "x@example.com"}).status_code == 403
    assert client.get("/v1/audit-logs", headers=member_headers).status_code == 403
    assert client.patch(f"/v1/users/{owner.owner_id}", headers=owner.headers, json={"role": "admin"}).status_code == 403
    disabled = client.patch(f"/v1/users/{invited['id']}", headers=owner.headers, json={"disabled": True})
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert client.get("/v1/me", headers=member_headers).status_code == 401
    assert client.post("/v1/auth/accept-invite",
                       json={"token": invited["invite_token"], "password": PASSWORD}).status_code == 404


def test_login_is_rate_limited_per_account(client):
    handle = new_tenant()
    limit = get_settings().login_max_attempts_per_account
    for _ in range(limit):
        assert client.post("/v1/auth/login", json={"email": handle.owner_email, "password": "wrong"}).status_code == 401
    blocked = client.post("/v1/auth/login", json={"email": handle.owner_email, "password": PASSWORD})
    assert blocked.status_code == 429 and blocked.headers["retry-after"]


def test_every_write_is_audited_and_the_log_filters(client, two_tenants):
    owner, _ = two_tenants
    created = client.post("/v1/api-keys", headers=owner.headers, json={"name": "audited"}).json()
    client.delete(f"/v1/api-keys/{created['id']}", headers=owner.headers)
    entries = client.get("/v1/audit-logs", headers=owner.headers,
                         params={"resource_type": "api_key", "resource_id": created["id"]}).json()["items"]
    assert [e["action"] for e in entries] == ["api_key.revoke", "api_key.create"]
    assert all(e["user_id"] == owner.owner_id for e in entries)
    page = client.get("/v1/audit-logs", headers=owner.headers, params={"limit": 1}).json()
    following = client.get("/v1/audit-logs", headers=owner.headers,
                           params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert page["items"][0]["id"] != following["items"][0]["id"]


def test_prompts_are_versioned_and_validated(client, two_tenants):
    owner, _ = two_tenants
    step = "analyze_product"  # a known step (the registry's); no other test of this module writes its prompts
    first = client.post("/v1/prompts", headers=owner.headers,
                        json={"step": step, "content": "Write about {{topic}}", "variables": ["topic"]}).json()
    second = client.post("/v1/prompts", headers=owner.headers,
                         json={"step": step, "content": "Write on {{topic}}!", "variables": ["topic"]}).json()
    assert (first["version"], second["version"]) == (1, 2)
    undeclared = client.post("/v1/prompts", headers=owner.headers,
                             json={"step": step, "content": "Hi {{who}}", "variables": []})
    assert undeclared.status_code == 422 and "who" in undeclared.json()["detail"]
    client.post(f"/v1/prompts/{first['id']}/activate", headers=owner.headers)
    listed = client.get("/v1/prompts", headers=owner.headers, params={"step": step}).json()["items"]
    assert [(p["version"], p["is_active"]) for p in listed] == [(2, False), (1, True)]


def test_llm_registry_is_readable_and_tenants_choose_their_own_model(client, two_tenants):
    owner, other = two_tenants
    models = client.get("/v1/llm/models", headers=owner.headers).json()["items"]
    assert {m["provider_id"] for m in models} >= {"openai", "gemini", "claude", "offline"}
    chosen = client.put("/v1/llm/step-defaults/write_article", headers=owner.headers,
                        json={"provider_id": "gemini", "model_class": "standard"})
    assert chosen.status_code == 200
    mine = {d["step"]: d for d in client.get("/v1/llm/step-defaults", headers=owner.headers).json()["items"]}
    theirs = {d["step"]: d for d in client.get("/v1/llm/step-defaults", headers=other.headers).json()["items"]}
    assert mine["write_article"]["tenant_override"]["provider_id"] == "gemini"
    assert theirs["write_article"]["tenant_override"] is None
    unknown = client.put("/v1/llm/step-defaults/write_article", headers=owner.headers,
                         json={"provider_id": "nobody"})
    assert unknown.status_code == 404


def test_tokens_verify_after_key_rotation(runtime, two_tenants):
    owner, _ = two_tenants
    secrets = runtime.client("secretsmanager")
    secret_id = get_settings().jwt_secret_id
    old_token = tokens.sign({"sub": owner.owner_id, "tid": owner.tenant_id}, "access", 600)
    rotated = json.dumps({"kid": "k-rotated", "secret": uuid.uuid4().hex})
    secrets.put_secret_value(SecretId=secret_id, SecretString=rotated)
    from funnel.platform.secrets import reset_clients

    reset_clients()
    assert tokens.verify(old_token, "access")["sub"] == owner.owner_id
    new_token = tokens.sign({"sub": owner.owner_id, "tid": owner.tenant_id}, "access", 600)
    assert jwt.get_unverified_header(new_token)["kid"] == "k-rotated"
    assert tokens.verify(new_token, "access")["tid"] == owner.tenant_id
