"""The workspace's settings through the real app against PostgreSQL (issue #18, item 4): ``GET/PATCH /v1/settings``
round-trips what ``system_settings`` holds (and what community's shortlinks and the LLM steps read), refuses bad
values with a 422 naming the field and writes nothing then, lets only admins change it (audited with field names,
never values), never returns the SMTP password (stored encrypted, bound to the tenant), and keeps two pooled
workspaces' settings apart.

Addresses are public IP literals (1.1.1.1, 8.8.8.8): the SSRF guard approves them without DNS.
"""
from __future__ import annotations

import uuid

import pytest

from funnel import db
from funnel.platform import crypto, users
from tests.support.tenants import PASSWORD, new_pooled_tenant

SMTP_PASSWORD = "smtp-secret-9f3a"


@pytest.fixture(scope="module")
def tenant(runtime):
    return new_pooled_tenant()


def _patch(api, tenant, body: dict, headers: dict | None = None):
    return api.patch("/v1/settings", headers=headers or tenant.headers, json=body)


def _stored(tenant) -> dict:
    with db.tenant_transaction(tenant.tenant_id) as conn:
        return conn.execute("SELECT * FROM system_settings").fetchone() or {}


def _field(response) -> list:
    assert response.status_code == 422, response.text
    return response.json()["errors"][0]["loc"]


def test_settings_round_trip_and_null_clears(api, tenant):
    fresh = api.get("/v1/settings", headers=tenant.headers)
    assert fresh.status_code == 200

    changed = _patch(api, tenant, {
        "base_url": "https://1.1.1.1/site", "shortlink_domain": "Go.Example-Tenant.com",
        "send_window": {"days": [0, 2, 4], "start": "08:30", "timezone": "Europe/Paris"}})
    assert changed.status_code == 200, changed.text
    settings = changed.json()
    assert settings["base_url"] == "https://1.1.1.1/site"
    assert settings["shortlink_domain"] == "go.example-tenant.com"
    assert settings["send_window"] == {"days": [0, 2, 4], "start": "08:30", "end": "18:00",
                                       "timezone": "Europe/Paris"}
    assert api.get("/v1/settings", headers=tenant.headers).json() == settings
    # What community's shortlinks read is what was written.
    assert _stored(tenant)["shortlink_domain"] == "go.example-tenant.com"

    cleared = _patch(api, tenant, {"base_url": None, "send_window": None})
    assert cleared.status_code == 200
    assert cleared.json()["base_url"] is None and cleared.json()["send_window"] is None
    assert cleared.json()["shortlink_domain"] == "go.example-tenant.com"  # not sent: unchanged


def test_ai_choices_are_checked_by_the_llm_registry(api, tenant):
    defaults = api.get("/v1/llm/step-defaults", headers=tenant.headers).json()["items"]
    step = defaults[0]
    choice = {"provider_id": step["provider_id"], "model_class": step["model_class"]}
    chosen = _patch(api, tenant, {"ai": {"step_models": {step["step"]: choice}}})
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["ai"]["step_models"][step["step"]]["provider_id"] == step["provider_id"]
    # The registry's own view of the workspace's choice is the same one.
    listed = api.get("/v1/llm/step-defaults", headers=tenant.headers).json()["items"]
    assert [d["tenant_override"] for d in listed if d["step"] == step["step"]][0]["provider_id"] == \
        step["provider_id"]

    assert _field(_patch(api, tenant, {"ai": {"step_models": {"no_such_step": choice}}})) == \
        ["body", "ai", "step_models", "no_such_step"]
    assert _field(_patch(api, tenant, {"ai": {"step_models": {step["step"]: {"provider_id": "nobody"}}}})) == \
        ["body", "ai", "step_models", step["step"]]
    back = _patch(api, tenant, {"ai": {"step_models": {step["step"]: None}}})
    assert step["step"] not in back.json()["ai"]["step_models"]


@pytest.mark.parametrize(("body", "loc"), [
    ({"base_url": "http://169.254.169.254/latest"}, ["body", "base_url"]),
    ({"base_url": "ftp://1.1.1.1/"}, ["body", "base_url"]),
    ({"base_url": "https://user:pw@1.1.1.1/"}, ["body", "base_url"]),
    ({"send_window": {"days": [7]}}, ["body", "send_window", "days", 0]),
    ({"send_window": {"start": "24:00"}}, ["body", "send_window", "start"]),
    ({"send_window": {"timezone": "Mars/Olympus"}}, ["body", "send_window", "timezone"]),
    ({"shortlink_domain": "not a host"}, ["body", "shortlink_domain"]),
    ({"shortlink_domain": "https://go.example.com/x"}, ["body", "shortlink_domain"]),
    ({"shortlink_domain": "10.0.0.1"}, ["body", "shortlink_domain"]),
    ({"shortlink_domain": "links.internal"}, ["body", "shortlink_domain"]),
    ({"smtp": {"host": "10.1.2.3"}}, ["body", "smtp", "host"]),
    ({"smtp": {"host": "8.8.8.8", "tls": "sometimes"}}, ["body", "smtp", "tls"]),
    ({"smtp": {"host": "8.8.8.8", "port": 0}}, ["body", "smtp", "port"]),
    ({"unknown": 1}, ["body", "unknown"]),
])
def test_a_bad_value_is_a_422_naming_it_and_nothing_is_written(api, tenant, body, loc):
    before = _stored(tenant)
    # A valid field beside the bad one is not written either.
    assert _field(_patch(api, tenant, {"base_url": "https://8.8.8.8/", **body})) == loc
    assert _stored(tenant) == before


def test_the_smtp_password_is_write_only_and_stored_encrypted(api, tenant):
    saved = _patch(api, tenant, {"smtp": {"host": "8.8.8.8", "port": 465, "username": "mailer", "tls": "tls",
                                          "password": SMTP_PASSWORD}})
    assert saved.status_code == 200, saved.text
    assert saved.json()["smtp"] == {"host": "8.8.8.8", "port": 465, "username": "mailer", "tls": "tls",
                                    "password_set": True}
    shown = api.get("/v1/settings", headers=tenant.headers)
    assert SMTP_PASSWORD not in saved.text and SMTP_PASSWORD not in shown.text
    stored = _stored(tenant)["smtp_settings"]
    assert SMTP_PASSWORD not in str(stored)
    assert crypto.decrypt(stored["password_encrypted"], tenant.tenant_id) == SMTP_PASSWORD

    # Without `password` the stored one stays while the server does; pointing the settings elsewhere drops it.
    kept = _patch(api, tenant, {"smtp": {"host": "8.8.8.8", "port": 587, "username": "mailer"}})
    assert kept.json()["smtp"]["password_set"] is True and kept.json()["smtp"]["tls"] == "starttls"
    moved = _patch(api, tenant, {"smtp": {"host": "1.1.1.1", "port": 587, "username": "mailer"}})
    assert moved.json()["smtp"]["password_set"] is False
    assert _patch(api, tenant, {"smtp": None}).json()["smtp"] is None

    audit = api.get("/v1/audit-logs", headers=tenant.headers, params={"action": "settings.update"}).json()["items"]
    assert audit and all("fields" in entry["details"] for entry in audit)
    assert ["smtp.host", "smtp.port", "smtp.username", "smtp.tls", "smtp.password"] in \
        [entry["details"]["fields"] for entry in audit]
    assert SMTP_PASSWORD not in str(audit)


def test_a_member_reads_but_cannot_change_the_settings(api, tenant):
    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    users.create_user(tenant.tenant_id, email=email, password=PASSWORD, role="member", display_name=None,
                      actor="system")
    token = api.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
    member = {"Authorization": f"Bearer {token}"}
    assert api.get("/v1/settings", headers=member).status_code == 200
    before = _stored(tenant)
    refused = _patch(api, tenant, {"base_url": "https://8.8.8.8/"}, headers=member)
    assert refused.status_code == 403
    assert _stored(tenant) == before


def test_two_pooled_workspaces_see_only_their_own_settings(api, tenant):
    other = new_pooled_tenant()
    assert _patch(api, other, {"shortlink_domain": f"go-{uuid.uuid4().hex[:6]}.example.org",
                               "base_url": "https://8.8.4.4/"}).status_code == 200
    mine = _patch(api, tenant, {"base_url": "https://1.0.0.1/"}).json()
    theirs = api.get("/v1/settings", headers=other.headers).json()
    assert mine["base_url"] == "https://1.0.0.1/" and theirs["base_url"] == "https://8.8.4.4/"
    assert mine["shortlink_domain"] != theirs["shortlink_domain"]


def test_a_shortlink_domain_another_workspace_uses_is_refused(api, tenant):
    other = new_pooled_tenant()
    domain = f"links-{uuid.uuid4().hex[:6]}.example.net"
    with db.control_transaction() as conn:  # the other workspace holds a shortlink on that domain
        conn.execute("INSERT INTO shortlink_routes (host, key, tenant_id, shortlink_id) VALUES (%s, 'launch', %s, "
                     "%s)", (domain, other.tenant_id, str(uuid.uuid4())))
    assert _field(_patch(api, tenant, {"shortlink_domain": domain})) == ["body", "shortlink_domain"]
    assert _patch(api, other, {"shortlink_domain": domain}).status_code == 200
