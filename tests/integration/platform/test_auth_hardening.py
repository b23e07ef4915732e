"""Sign-in and sessions as an attacker tries them, through the real app against PostgreSQL (issue 14, item 4):

- a wrong password answers the same 401 whether or not the e-mail has several workspaces (their slugs are never
  listed); the choice of workspace comes only after a right password, and that answer is rate-limited too;
- the per-account limit holds under concurrency (12 wrong passwords at once, limit 5: 5 checked, 7 refused);
- ``Retry-After`` is the time left in the window that refused the attempt;
- refresh tokens rotate, a replayed one ends its session, logout ends one session and ``everywhere`` all of
  them, and disabling a user ends their sessions for good (re-enabling does not revive old tokens);
- an API key cannot be created already expired (422 naming ``expires_at``), and one that expires stops working.

Each test has its own client address, so the per-IP window of one test does not refuse another's sign-ins.
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from funnel.platform import users
from funnel.settings import get_settings
from tests.support.contract import contract_client
from tests.support.tenants import PASSWORD, new_pooled_tenant, row_count

PROBLEM = "application/problem+json"
OTHER_PASSWORD = "another horse battery staple"


def _login(client, email: str, password: str, tenant: str | None = None):
    body = {"email": email, "password": password} | ({"tenant": tenant} if tenant else {})
    return client.post("/v1/auth/login", json=body)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _in_second_workspace(email: str, password: str):
    """A second workspace where ``email`` has a user with ``password``."""
    other = new_pooled_tenant()
    users.create_user(other.tenant_id, email=email, password=password, role="member", display_name=None,
                      actor="system")
    return other


def _comparable(response) -> tuple:
    return response.status_code, response.headers["content-type"], response.json()


# ---------------------------------------------------------------- which workspaces an e-mail has

def test_a_wrong_password_never_lists_the_workspaces_of_the_email(client):
    first = new_pooled_tenant()
    second = _in_second_workspace(first.owner_email, PASSWORD)
    unknown = _login(client, f"nobody-{uuid.uuid4().hex[:8]}@example.com", "wrong password")
    assert unknown.status_code == 401
    for wrong in (_login(client, first.owner_email, "wrong password"),
                  _login(client, first.owner_email, "wrong password", first.slug),
                  _login(client, first.owner_email, PASSWORD, "not-a-workspace-of-hers")):
        assert _comparable(wrong) == _comparable(unknown)
        assert first.slug not in wrong.text and second.slug not in wrong.text


def test_the_workspace_choice_comes_after_a_right_password_and_is_rate_limited(client):
    first = new_pooled_tenant()
    second = _in_second_workspace(first.owner_email, PASSWORD)
    choice = _login(client, first.owner_email, PASSWORD)
    assert choice.status_code == 422 and choice.headers["content-type"] == PROBLEM
    assert sorted(choice.json()["tenants"]) == sorted([first.slug, second.slug])
    assert choice.json()["errors"][0]["loc"] == ["body", "tenant"]
    chosen = _login(client, first.owner_email, PASSWORD, second.slug)
    assert chosen.status_code == 200
    me = client.get("/v1/me", headers=_bearer(chosen.json()["access_token"])).json()
    assert me["tenant_id"] == second.tenant_id
    # Each choice answer counts as an attempt (a success does not): the limit ends them as it ends wrong ones.
    limit = get_settings().login_max_attempts_per_account
    answers = [_login(client, first.owner_email, PASSWORD).status_code for _ in range(limit)]
    assert answers == [422] * (limit - 1) + [429]


def test_a_password_right_for_one_of_several_workspaces_signs_in_there(client):
    first = new_pooled_tenant()
    second = _in_second_workspace(first.owner_email, OTHER_PASSWORD)
    signed_in = _login(client, first.owner_email, OTHER_PASSWORD)
    assert signed_in.status_code == 200
    me = client.get("/v1/me", headers=_bearer(signed_in.json()["access_token"])).json()
    assert me["tenant_id"] == second.tenant_id


# ---------------------------------------------------------------- the limit under concurrency, Retry-After

def test_concurrent_wrong_passwords_are_counted_atomically(app, contract):
    handle = new_pooled_tenant()
    limit = get_settings().login_max_attempts_per_account
    clients = [contract_client(app, contract) for _ in range(12)]  # other addresses: only the account's limit applies
    start, statuses, lock = threading.Barrier(len(clients)), [], threading.Lock()

    def attempt(client):
        start.wait()
        status = _login(client, handle.owner_email, "wrong password").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=attempt, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [401] * limit + [429] * (len(clients) - limit), statuses


def test_retry_after_is_the_time_left_in_the_lockout(client):
    handle = new_pooled_tenant()
    settings = get_settings()
    for _ in range(settings.login_max_attempts_per_account):
        assert _login(client, handle.owner_email, "wrong password").status_code == 401
    refused = _login(client, handle.owner_email, PASSWORD)
    assert refused.status_code == 429 and refused.headers["content-type"] == PROBLEM
    assert settings.login_window_seconds - 60 <= int(refused.headers["retry-after"]) <= settings.login_window_seconds


# ---------------------------------------------------------------- sessions

def test_refresh_tokens_rotate_and_a_replay_ends_the_session(client):
    handle = new_pooled_tenant()
    first = _login(client, handle.owner_email, PASSWORD).json()
    second = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    third = client.post("/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert third.status_code == 200
    assert client.get("/v1/me", headers=_bearer(third.json()["access_token"])).status_code == 200

    replay = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401 and replay.headers["content-type"] == PROBLEM
    # The replay revoked the family: the newest tokens, refresh and access, end with it.
    assert client.post("/v1/auth/refresh", json={"refresh_token": third.json()["refresh_token"]}).status_code == 401
    assert client.get("/v1/me", headers=_bearer(third.json()["access_token"])).status_code == 401
    # Another sign-in is another session, untouched.
    assert client.get("/v1/me", headers=handle.headers).status_code == 200


def test_logout_ends_this_session_and_everywhere_ends_them_all(client):
    handle = new_pooled_tenant()
    here, there, elsewhere = (_login(client, handle.owner_email, PASSWORD).json() for _ in range(3))
    logged_out = client.post("/v1/auth/logout", json={"refresh_token": here["refresh_token"]})
    assert logged_out.status_code == 204
    assert client.post("/v1/auth/refresh", json={"refresh_token": here["refresh_token"]}).status_code == 401
    assert client.get("/v1/me", headers=_bearer(here["access_token"])).status_code == 401
    assert client.post("/v1/auth/logout", json={"refresh_token": here["refresh_token"]}).status_code == 204
    assert client.get("/v1/me", headers=_bearer(there["access_token"])).status_code == 200

    # A spent session cannot end the others; the current refresh token of a live one can.
    assert client.post("/v1/auth/logout", json={"refresh_token": here["refresh_token"],
                                                "everywhere": True}).status_code == 401
    everywhere = client.post("/v1/auth/logout", json={"refresh_token": there["refresh_token"], "everywhere": True})
    assert everywhere.status_code == 204
    for session in (there, elsewhere, {"access_token": handle.access_token, "refresh_token": handle.refresh_token}):
        assert client.get("/v1/me", headers=_bearer(session["access_token"])).status_code == 401
        assert client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401
    assert client.post("/v1/auth/logout", json={"refresh_token": "garbage"}).status_code == 401
    assert _login(client, handle.owner_email, PASSWORD).status_code == 200


def test_tokens_from_before_a_user_was_disabled_stay_dead_after_re_enabling(client):
    owner = new_pooled_tenant()
    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    member = users.create_user(owner.tenant_id, email=email, password=PASSWORD, role="member", display_name=None,
                               actor="system")
    before = _login(client, email, PASSWORD).json()
    for disabled in (True, False):
        changed = client.patch(f"/v1/users/{member['id']}", headers=owner.headers, json={"disabled": disabled})
        assert changed.status_code == 200 and changed.json()["disabled"] is disabled
    assert client.get("/v1/me", headers=_bearer(before["access_token"])).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": before["refresh_token"]}).status_code == 401
    after = _login(client, email, PASSWORD)
    assert after.status_code == 200
    assert client.get("/v1/me", headers=_bearer(after.json()["access_token"])).status_code == 200


# ---------------------------------------------------------------- API key expiry

def test_an_api_key_cannot_be_created_expired_and_stops_working_when_it_expires(client):
    handle = new_pooled_tenant()
    for past in (datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)):
        refused = client.post("/v1/api-keys", headers=handle.headers,
                              json={"name": "old", "expires_at": past.isoformat()})
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
        assert [e["loc"] for e in refused.json()["errors"]] == [["body", "expires_at"]]
    assert row_count(handle, "api_keys") == 0

    soon = datetime.now(UTC) + timedelta(seconds=2)
    created = client.post("/v1/api-keys", headers=handle.headers, json={"name": "soon", "expires_at": soon.isoformat()})
    assert created.status_code == 201
    key = {"X-Api-Key": created.json()["key"]}
    assert client.get("/v1/me", headers=key).status_code == 200
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
    expired = client.get("/v1/me", headers=key)
    assert expired.status_code == 401 and expired.headers["content-type"] == PROBLEM
