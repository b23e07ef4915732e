"""Self-service sign-up and e-mail verification through the API (issue #18, item 1), against the tests'
PostgreSQL with the local runtime: the operations function provisions in-process (moto's Lambda invoke runs its
handler), and the verification mail goes through the notifications queue and SES (moto's, read back here).

- a sign-up makes a pooled, unverified workspace whose owner is signed in, and mails a single-use link;
- the link verifies once (then 401), a forged, expired or wrong-purpose one is 401; a resend voids older links;
- an unverified workspace configures (contacts, templates, campaigns, tasks) but sending a campaign, starting a
  task, publishing and generating-to-publish answer 403 until it is verified, and then proceed;
- bad input is a 422 naming the field with nothing created; a taken slug is a 409 naming it (a derived one gets a
  suffix); a failed provisioning is a 503 leaving nothing behind; the per-address limit is a 429 with Retry-After.

Each test signs up from an address of its own (the per-address window of one cannot refuse another's); the first
test goes through the local gateway, as `make dev` serves it.
"""
from __future__ import annotations

import uuid

import pytest

from funnel import db
from funnel.platform import account_tokens, migrations, ratelimit, tenants
from funnel.settings import get_settings
from tests.support.contract import contract_client, random_client_address
from tests.support.mail import wait_for_mail
from tests.support.outreach import SENDER
from tests.support.signup import clear_sign_up_window
from tests.support.tenants import PASSWORD, new_pooled_tenant

UNVERIFIED = "https://docs.funnel.dev/problems/workspace-unverified"
SUBJECT = "Verify your e-mail address"


def _body(**overrides) -> dict:
    suffix = uuid.uuid4().hex[:10]
    return {"workspace_name": f"Acme Widgets {suffix}", "email": f"owner-{suffix}@example.com",
            "password": PASSWORD, **overrides}


def _sign_up(client, **overrides) -> dict:
    body = _body(**overrides)
    response = client.post("/v1/signup", json=body)
    assert response.status_code == 201, response.text
    return {**response.json(), "email": body["email"]}


def _bearer(made: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {made['tokens']['access_token']}"}


def _control_row(sql: str, *params) -> dict | None:
    with db.control_admin_connect() as conn:
        return conn.execute(sql, params).fetchone()


def _tenant_count() -> int:
    return _control_row("SELECT count(*) AS n FROM tenants")["n"]


def _database_count() -> int:
    return _control_row("SELECT count(*) AS n FROM pg_database")["n"]


# ---------------------------------------------------------------- sign-up and the link, end to end

def test_a_sign_up_through_the_gateway_makes_a_pooled_unverified_workspace_and_mails_a_link_that_works_once(api):
    clear_sign_up_window()  # the session's other sign-ups through the gateway came from the same address
    body = _body()
    response = api.post("/v1/signup", json=body)
    assert response.status_code == 201, response.text
    made = response.json()
    workspace = made["workspace"]
    assert workspace["isolation"] == "pool" and workspace["email_verified"] is False
    assert workspace["slug"] == tenants.slugify(body["workspace_name"]) and workspace["name"] == body["workspace_name"]
    assert made["owner"]["role"] == "owner" and made["owner"]["email"] == body["email"]
    assert made["owner"]["last_login_at"] is not None  # signing up signed the owner in
    me = api.get("/v1/me", headers=_bearer(made))
    assert me.status_code == 200 and me.json()["tenant_id"] == workspace["id"]
    signed_in = api.post("/v1/auth/login", json={"email": body["email"], "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    row = _control_row("SELECT isolation, status, email_verified_at FROM tenants WHERE id = %s", workspace["id"])
    assert row == {"isolation": "pool", "status": "active", "email_verified_at": None}

    mail = wait_for_mail(body["email"], SUBJECT)
    assert workspace["name"] in mail.subject and f"{get_settings().frontend_origin}/verify-email?token=" in mail.text
    verified = api.post("/v1/auth/verify-email", json={"token": mail.link_token()})
    assert verified.status_code == 200, verified.text
    assert verified.json()["workspace_id"] == workspace["id"] and verified.json()["email_verified"] is True
    assert tenants.directory.get(workspace["id"]).email_verified
    again = api.post("/v1/auth/verify-email", json={"token": mail.link_token()})
    assert again.status_code == 401 and again.json()["detail"] == account_tokens.INVALID


def test_operator_workspaces_are_verified_from_the_start(runtime):
    handle = new_pooled_tenant()
    assert tenants.directory.get(handle.tenant_id).email_verified
    slug = f"t-{uuid.uuid4().hex[:10]}"
    report = runtime.invoke("PlatformOperationsFunction", {
        "action": "provision_tenant", "name": "Operator's", "owner_email": f"op-{slug}@example.com",
        "owner_password": PASSWORD, "slug": slug, "isolation": "pool"})
    assert report["ok"], report["error"]
    assert tenants.directory.by_slug(slug).email_verified


@pytest.mark.parametrize("token", ["", "not-a-token", "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"])
def test_a_forged_link_is_a_401_or_a_422(client, token):
    response = client.post("/v1/auth/verify-email", json={"token": token})
    assert response.status_code == (422 if token == "" else 401), response.text


def test_an_expired_a_tampered_or_a_wrong_purpose_link_is_the_same_401(client):
    made = _sign_up(client)
    tenant_id, user_id = made["workspace"]["id"], made["owner"]["id"]
    expired = account_tokens.issue("verify_email", tenant_id, user_id, -1)
    wrong_purpose = account_tokens.issue("password_reset", tenant_id, user_id, 900)
    good = account_tokens.issue("verify_email", tenant_id, user_id, 900)
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for token in (expired, wrong_purpose, tampered):
        response = client.post("/v1/auth/verify-email", json={"token": token})
        assert response.status_code == 401 and response.json()["detail"] == account_tokens.INVALID
    assert not tenants.directory.get(tenant_id).email_verified
    assert client.post("/v1/auth/verify-email", json={"token": good}).status_code == 200


def test_a_resend_voids_the_older_links_and_is_refused_once_verified_or_too_often(client):
    made = _sign_up(client)
    first = wait_for_mail(made["email"], SUBJECT)
    resent = client.post("/v1/auth/verify-email/resend", headers=_bearer(made))
    assert resent.status_code == 202, resent.text
    assert resent.json() == {"email": made["email"], "expires_in": get_settings().verify_email_ttl_seconds}
    second = wait_for_mail(made["email"], SUBJECT, count=2)
    assert client.post("/v1/auth/verify-email", json={"token": first.link_token()}).status_code == 401
    for _ in range(get_settings().verify_email_resend_max - 1):
        assert client.post("/v1/auth/verify-email/resend", headers=_bearer(made)).status_code == 202
    refused = client.post("/v1/auth/verify-email/resend", headers=_bearer(made))
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 3600
    latest = wait_for_mail(made["email"], SUBJECT, count=get_settings().verify_email_resend_max + 1)
    assert client.post("/v1/auth/verify-email", json={"token": second.link_token()}).status_code == 401
    assert client.post("/v1/auth/verify-email", json={"token": latest.link_token()}).status_code == 200
    done = client.post("/v1/auth/verify-email/resend", headers=_bearer(made))
    assert done.status_code == 409


def test_a_mail_that_cannot_be_written_fails_no_sign_up_and_its_resend_is_a_503(client, monkeypatch):
    from funnel.notifications import service

    def down(*args, **kwargs):
        raise RuntimeError("the tenant database refused the notification")

    monkeypatch.setattr(service, "notify", down)
    made = _sign_up(client)
    assert client.get("/v1/me", headers=_bearer(made)).status_code == 200
    resent = client.post("/v1/auth/verify-email/resend", headers=_bearer(made))
    assert resent.status_code == 503 and resent.headers["retry-after"], resent.text
    monkeypatch.undo()
    assert client.post("/v1/auth/verify-email/resend", headers=_bearer(made)).status_code == 202
    token = wait_for_mail(made["email"], SUBJECT).link_token()
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 200


def test_a_member_cannot_ask_for_a_link(client):
    made = _sign_up(client)
    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    invited = client.post("/v1/users", headers=_bearer(made), json={"email": email, "role": "member"})
    assert invited.status_code == 201, invited.text
    assert client.post("/v1/auth/accept-invite", json={"token": invited.json()["invite_token"],
                                                       "password": PASSWORD}).status_code == 200
    tokens = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
    refused = client.post("/v1/auth/verify-email/resend", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert refused.status_code == 403


# ---------------------------------------------------------------- the gate

@pytest.fixture
def example_hosts_allowed(monkeypatch):
    """No DNS in the sandbox: the task's URL host passes the SSRF guard without resolving."""
    from funnel.settings import reset_settings

    monkeypatch.setenv("FUNNEL_SSRF_ALLOW_HOSTS", "127.0.0.1,localhost,signup.example.com")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


class _StartedExecutions:
    """Step Functions as the send pipeline's start sees it: every start succeeds, nothing runs."""

    def start_execution(self, **request):
        return {"executionArn": f"arn:aws:states:us-east-1:123456789012:execution:send:{request['name']}"}


def test_an_unverified_workspace_configures_but_sends_nothing_until_verified(client, example_hosts_allowed,
                                                                             monkeypatch):
    from funnel.outreach import tasks

    made = _sign_up(client)
    headers = _bearer(made)
    contact = client.post("/v1/contacts", headers=headers, json={"company_name": "Signup KK",
                                                                 "email": "info@signup.example.com"})
    assert contact.status_code == 201, contact.text
    template = client.post("/v1/templates", headers=headers, json={"title": "hello", "body": "{{company_name}} 御中"})
    assert template.status_code == 201, template.text
    campaign = client.post("/v1/email-campaigns", headers=headers, json={
        "name": "launch", "subject": "Hello", "body": "Hi", "from_name": "Sales", "sender_identity": "Acme Inc. Tokyo",
        "recipients": [{"email": "ann@signup.example.com"}]})
    assert campaign.status_code == 201, campaign.text
    task = client.post("/v1/tasks", headers=headers, json={
        "name": "launch", "sender": SENDER, "message": "{{company_name}} 御中",
        "urls": ["https://signup.example.com/contact"], "recontact_days": 0})
    assert task.status_code == 201, task.text
    nowhere = uuid.uuid4()
    sends = [("/v1/email-campaigns/{}/send".format(campaign.json()["id"]), {}),
             ("/v1/tasks/{}/start".format(task.json()["id"]), None),
             (f"/v1/articles/{nowhere}/publish", {"mode": "publish"}),
             (f"/v1/products/{nowhere}/generate", {"publish_mode": "publish"})]
    for path, json in sends:
        refused = client.post(path, headers=headers, json=json)
        assert refused.status_code == 403 and refused.json()["type"] == UNVERIFIED, (path, refused.text)
        assert "verify" in refused.json()["detail"]
    # drafts are no sending: the gate does not stand in their way (the unknown ids are what answers)
    assert client.post(f"/v1/articles/{nowhere}/publish", headers=headers, json={"mode": "draft"}).status_code == 404
    assert client.post(f"/v1/products/{nowhere}/generate", headers=headers,
                       json={"publish_mode": "draft"}).status_code == 404
    assert client.get(f"/v1/email-campaigns/{campaign.json()['id']}", headers=headers).json()["status"] == "draft"
    assert client.get(f"/v1/tasks/{task.json()['id']}", headers=headers).json()["status"] == "draft"

    token = wait_for_mail(made["email"], SUBJECT).link_token()
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    monkeypatch.setattr(tasks, "_stepfunctions", lambda: _StartedExecutions())
    sent = client.post(sends[0][0], headers=headers, json=sends[0][1])
    assert sent.status_code == 200 and sent.json()["status"] == "sending", sent.text
    started = client.post(sends[1][0], headers=headers)
    assert started.status_code == 200 and started.json()["status"] == "running", started.text
    for path, json in sends[2:]:
        assert client.post(path, headers=headers, json=json).status_code == 404, path  # past the gate


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize(("field", "value"), [
    ("email", "someone@mailinator.com"), ("email", "someone@mail.mailinator.com"), ("email", "not-an-email"),
    ("email", "a..b@example.com"), ("email", "x@example.test"), ("email", "a" * 310 + "@example.com"),
    ("password", "too-short"), ("password", "z" * 12), ("password", "x" * 1025), ("password", "SAME"),
    ("workspace_name", "Acme\x07Corp"), ("workspace_name", "Acme\nCorp"), ("workspace_name", "\u202eevil"),
    ("workspace_name", "x" * 201), ("workspace_name", "Acme\x00Corp"), ("workspace_name", "   "),
    ("slug", "A"), ("slug", "-acme"), ("slug", "x" * 64),
])
def test_bad_input_is_a_422_naming_the_field_and_creates_nothing(client, field, value):
    body = _body()
    body[field] = body["email"] if value == "SAME" else value
    tenants_before, databases_before = _tenant_count(), _database_count()
    response = client.post("/v1/signup", json=body)
    assert response.status_code == 422, response.text
    assert ["body", field] in [error["loc"] for error in response.json()["errors"]], response.json()
    assert (_tenant_count(), _database_count()) == (tenants_before, databases_before)
    assert _control_row("SELECT 1 FROM login_directory WHERE email = %s", body["email"]) is None


def test_an_unknown_field_is_a_422(client):
    assert client.post("/v1/signup", json={**_body(), "plan": "enterprise"}).status_code == 422


def test_a_taken_slug_is_a_409_naming_it_and_a_taken_derived_one_gets_a_suffix(client):
    existing = new_pooled_tenant()
    tenants_before = _tenant_count()
    taken = client.post("/v1/signup", json=_body(slug=existing.slug))
    assert taken.status_code == 409 and taken.json()["errors"][0]["loc"] == ["body", "slug"], taken.text
    assert _tenant_count() == tenants_before
    # the name makes the existing slug (t-<hex>): the user chose none, so one is made
    made = _sign_up(client, workspace_name=existing.slug.replace("-", " "))
    assert made["workspace"]["slug"].startswith(existing.slug + "-") and made["workspace"]["slug"] != existing.slug


def test_a_failed_provisioning_is_a_503_that_leaves_nothing_and_counts_no_attempt(client, monkeypatch):
    def broken(database_url):
        raise RuntimeError("the migration failed")

    monkeypatch.setattr(migrations, "upgrade_tenant_database", broken)  # inside the operations function
    body = _body()
    tenants_before = _tenant_count()
    for _ in range(get_settings().signup_max_per_ip + 1):  # over the limit: none of them counted
        response = client.post("/v1/signup", json=body)
        assert response.status_code == 503 and response.headers["retry-after"], response.text
    assert _tenant_count() == tenants_before
    assert _control_row("SELECT 1 FROM login_directory WHERE email = %s", body["email"]) is None
    monkeypatch.undo()
    monkeypatch.setattr(get_settings(), "operations_function_name", "funnel-no-such-function")
    assert client.post("/v1/signup", json=body).status_code == 503
    monkeypatch.undo()
    assert client.post("/v1/signup", json=body).status_code == 201


def test_sign_ups_from_one_address_are_limited(app, contract):
    settings = get_settings()
    address = random_client_address()
    client = contract_client(app, contract, address)
    _sign_up(client)
    for _ in range(settings.signup_max_per_ip - 1):  # the window's other sign-ups, without their provisioning
        ratelimit.reserve({f"signup:ip:{address}": settings.signup_max_per_ip}, settings.signup_window_seconds, "")
    tenants_before = _tenant_count()
    refused = client.post("/v1/signup", json=_body())
    assert refused.status_code == 429, refused.text
    assert 0 < int(refused.headers["retry-after"]) <= settings.signup_window_seconds
    assert _tenant_count() == tenants_before
