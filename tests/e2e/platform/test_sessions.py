"""A session's life through the local API gateway (template.yaml routes, v2 events): sign in, refresh (the
refresh token rotates), a replay ends the session, logout ends another, and `POST /v1/auth/logout` is public
(its refresh token is the credential, so it works after the access token expired). No failed sign-ins here:
every caller of the gateway shares one address, and so one per-IP window."""
from __future__ import annotations

from tests.support.tenants import PASSWORD, new_tenant


def _me(api, tokens: dict) -> int:
    return api.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code


def test_refresh_rotates_a_replay_ends_the_session_and_logout_ends_another(runtime, api):
    handle = new_tenant()
    first = api.post("/v1/auth/login", json={"email": handle.owner_email, "password": PASSWORD}).json()
    rotated = api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200 and rotated.json()["refresh_token"] != first["refresh_token"]
    assert _me(api, rotated.json()) == 200

    replay = api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401 and replay.headers["content-type"] == "application/problem+json"
    assert _me(api, rotated.json()) == 401

    second = api.post("/v1/auth/login", json={"email": handle.owner_email, "password": PASSWORD}).json()
    assert api.post("/v1/auth/logout", json={"refresh_token": second["refresh_token"]}).status_code == 204
    assert _me(api, second) == 401
    assert api.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401
