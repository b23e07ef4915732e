"""Sign-in with an OpenID provider (issue 18, item 2), end to end against a local provider over HTTPS
(oidc-provider-mock behind tests/support/oidc_provider.py), through the real app against PostgreSQL:

- the authorization code flow with PKCE (S256; the provider refuses a wrong verifier), state and nonce, ending in
  the same session as a password sign-in (the tokens work on /v1/me and refresh), ``users.auth_provider`` recorded;
- the user is found only by a verified e-mail: an unverified one, or one no Funnel user has, is a 401 and creates
  nothing; several workspaces are the login's 422 with ``tenants``; a disabled user is a 401;
- a state is spent once (unknown, replayed, expired, another provider's: 401);
- the ID token is refused when forged (a key the JWKS does not publish, ``alg: none``, HS256 keyed with the public
  key), expired, for another audience or party, from another issuer, or of another nonce; a key the cached JWKS
  does not know fetches it again (rotation);
- a redirect URI not allowed exactly is a 422, an unknown provider a 404, and the callback is rate-limited per IP.

Each test has its own client address, so the per-IP window of one test does not refuse another's sign-ins.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid

import pytest

from funnel import db
from funnel.api.app import create_app
from funnel.platform import oidc, users
from funnel.settings import get_settings, reset_settings
from tests.support.contract import ContractCheck
from tests.support.oidc_provider import PUBLISHED_EC_KID, PUBLISHED_KID, ROGUE_KID, OidcProvider
from tests.support.readme import readme_block
from tests.support.tenants import PASSWORD, new_pooled_tenant

CLIENT_ID, CLIENT_SECRET = "funnel-test-client", "test-client-secret"
OTHER_CLIENT_ID = "funnel-other-client"


@pytest.fixture(scope="module")
def provider(runtime):
    """The local provider, configured as two Funnel providers of the same issuer: ``mock`` (its client secret a
    plain Secrets Manager string, sent as HTTP Basic) and ``other`` (another client, its secret a JSON field)."""
    secrets = runtime.client("secretsmanager")
    plain_id, json_id = f"funnel/test-oidc/{uuid.uuid4().hex}", f"funnel/test-oidc/{uuid.uuid4().hex}"
    secrets.create_secret(Name=plain_id, SecretString=CLIENT_SECRET)
    secrets.create_secret(Name=json_id, SecretString=json.dumps({"client_secret": "other-secret"}))
    with OidcProvider() as local, pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUNNEL_OIDC_PROVIDERS", json.dumps([
            {"id": "mock", "issuer": local.issuer, "client_id": CLIENT_ID, "client_secret_id": plain_id},
            {"id": "other", "issuer": local.issuer, "client_id": OTHER_CLIENT_ID, "client_secret_id": json_id,
             "scopes": ["openid", "email", "profile"]}]))
        patch.setenv("FUNNEL_OIDC_CA_FILE", local.ca_file)
        reset_settings()
        oidc.forget_cached_metadata()
        yield local
    reset_settings()
    oidc.forget_cached_metadata()


@pytest.fixture(autouse=True)
def honest_provider(provider):
    """Each test starts with the ID tokens the mock issues, unchanged."""
    provider.rewrite_id_token = None
    yield
    provider.rewrite_id_token = None


@pytest.fixture(scope="module")
def app(runtime, provider):
    return create_app()


@pytest.fixture(scope="module")
def contract(app):
    return ContractCheck(app.openapi())


@pytest.fixture(scope="module")
def tenant(runtime):
    return new_pooled_tenant()


def _redirect_uri() -> str:
    return get_settings().frontend_origin.rstrip("/") + "/auth/callback"


def _start(client, provider_id: str = "mock", **body):
    return client.post(f"/v1/auth/oidc/{provider_id}/start", json={"redirect_uri": _redirect_uri(), **body})


def _at_provider(provider: OidcProvider, client, email: str | None, *, verified: object = True,
                 provider_id: str = "mock") -> dict[str, str]:
    """Start a sign-in and go through the provider's page as a user of ``email``: the redirect's parameters."""
    sub = f"sub-{uuid.uuid4().hex[:12]}"
    claims = {} if email is None else {"email": email}
    if verified is not None:
        claims["email_verified"] = verified
    provider.set_user(sub, claims)
    started = _start(client, provider_id)
    assert started.status_code == 200, started.text
    back = provider.authorize(started.json()["authorization_url"], sub)
    assert back["state"] == started.json()["state"] and back["redirect_uri"] == _redirect_uri()
    return back


def _callback(client, back: dict[str, str], provider_id: str = "mock", **extra):
    return client.post(f"/v1/auth/oidc/{provider_id}/callback",
                       json={"code": back["code"], "state": back["state"], **extra})


def _sign_in(provider, client, email: str | None, *, verified: object = True, provider_id: str = "mock",
             **extra):
    return _callback(client, _at_provider(provider, client, email, verified=verified, provider_id=provider_id),
                     provider_id, **extra)


def _refused(response, *words: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    for word in words:
        assert word in response.json()["detail"], response.json()["detail"]


def _user_row(tenant_id: str, user_id: str) -> dict:
    with db.tenant_transaction(tenant_id) as conn:
        return conn.execute("SELECT auth_provider, last_login_at FROM users WHERE id = %s", (user_id,)).fetchone()


# ---------------------------------------------------------------- a sign-in

def test_a_verified_email_signs_in_with_the_usual_session(provider, client, tenant):
    before = _user_row(tenant.tenant_id, tenant.owner_id)["last_login_at"]
    started = _start(client)
    assert started.status_code == 200
    authorization = started.json()["authorization_url"]
    assert authorization.startswith(f"{provider.issuer}/oauth2/authorize?")

    answer = _sign_in(provider, client, tenant.owner_email.upper())  # the directory's e-mails ignore case
    assert answer.status_code == 200, answer.text
    pair = answer.json()
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == tenant.owner_id and me.json()["auth_provider"] == "mock"
    row = _user_row(tenant.tenant_id, tenant.owner_id)
    assert row["auth_provider"] == "mock" and row["last_login_at"] > before
    with db.tenant_transaction(tenant.tenant_id) as conn:
        audited = conn.execute("SELECT details FROM audit_logs WHERE action = 'auth.login' AND user_id = %s "
                               "ORDER BY created_at DESC LIMIT 1", (tenant.owner_id,)).fetchone()
    assert audited["details"] == {"provider": "mock"}
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200  # the same session families as a password sign-in

    # The authorization request carried PKCE (S256), the nonce and the state; the token request the verifier
    # (the provider checked it against the challenge) and the client secret from Secrets Manager, as HTTP Basic.
    asked = provider.authorization_requests[-1]
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["nonce"] and asked["state"] and asked["scope"] == "openid email"
    exchange = provider.token_requests[-1]
    assert exchange.form["grant_type"] == "authorization_code" and len(exchange.form["code_verifier"]) >= 43
    assert exchange.form["redirect_uri"] == _redirect_uri() and "client_secret" not in exchange.form
    assert exchange.authorization.startswith("Basic ")

    # A password sign-in records the password again.
    assert client.post("/v1/auth/login", json={"email": tenant.owner_email, "password": PASSWORD}).status_code == 200
    assert _user_row(tenant.tenant_id, tenant.owner_id)["auth_provider"] == "password"


def test_another_provider_of_its_own_client_and_secret(provider, client, tenant):
    answer = _sign_in(provider, client, tenant.owner_email, provider_id="other")
    assert answer.status_code == 200, answer.text
    assert _user_row(tenant.tenant_id, tenant.owner_id)["auth_provider"] == "other"
    assert provider.authorization_requests[-1]["client_id"] == OTHER_CLIENT_ID
    assert provider.authorization_requests[-1]["scope"] == "openid email profile"


# ---------------------------------------------------------------- who may sign in

@pytest.mark.parametrize("verified", [False, "false", None], ids=["false", "the string false", "missing"])
def test_an_email_the_provider_has_not_verified_is_refused(provider, client, tenant, verified):
    _refused(_sign_in(provider, client, tenant.owner_email, verified=verified), "not verified")


def test_no_email_at_all_is_refused(provider, client):
    _refused(_sign_in(provider, client, None), "no e-mail")


def test_an_email_without_a_funnel_user_is_refused_and_nothing_is_created(provider, client):
    stranger = f"stranger-{uuid.uuid4().hex[:8]}@example.com"
    _refused(_sign_in(provider, client, stranger), "sign up first")
    with db.control_transaction() as conn:
        assert conn.execute("SELECT count(*) AS n FROM login_directory WHERE email = %s",
                            (stranger,)).fetchone()["n"] == 0


def test_several_workspaces_ask_which_as_login_does(provider, client, tenant):
    other = new_pooled_tenant()
    member = users.create_user(other.tenant_id, email=tenant.owner_email, password=PASSWORD, role="member",
                               display_name=None, actor="system")
    answer = _sign_in(provider, client, tenant.owner_email)
    assert answer.status_code == 422
    assert sorted(answer.json()["tenants"]) == sorted([tenant.slug, other.slug])
    assert answer.json()["errors"][0]["loc"] == ["body", "tenant"]

    chosen = _sign_in(provider, client, tenant.owner_email, tenant=other.slug)
    assert chosen.status_code == 200
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {chosen.json()['access_token']}"}).json()
    assert (me["tenant_id"], me["id"]) == (other.tenant_id, str(member["id"]))
    _refused(_sign_in(provider, client, tenant.owner_email, tenant="no-such-workspace"), "sign up first")

    users.update_user(other.owner, str(member["id"]), disabled=True)
    only = _sign_in(provider, client, tenant.owner_email)  # a disabled user's workspace is no choice any more
    assert only.status_code == 200
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {only.json()['access_token']}"}
                      ).json()["tenant_id"] == tenant.tenant_id


def test_a_disabled_user_is_refused(provider, client, tenant):
    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    member = users.create_user(tenant.tenant_id, email=email, password=PASSWORD, role="member", display_name=None,
                               actor="system")
    users.update_user(tenant.owner, str(member["id"]), disabled=True)
    _refused(_sign_in(provider, client, email), "disabled")


# ---------------------------------------------------------------- the state

def test_a_state_is_spent_once(provider, client, tenant):
    back = _at_provider(provider, client, tenant.owner_email)
    assert _callback(client, back).status_code == 200
    _refused(_callback(client, back), "already finished")  # replayed
    _refused(_callback(client, {**back, "state": "not-the-state"}), "start the sign-in again")


def test_a_state_of_another_provider_or_past_its_expiry_is_refused(provider, client, tenant):
    back = _at_provider(provider, client, tenant.owner_email)
    _refused(_callback(client, back, "other"))
    assert _callback(client, back).status_code == 200  # the wrong provider did not spend it

    late = _at_provider(provider, client, tenant.owner_email)
    with db.control_transaction() as conn:
        conn.execute("UPDATE oidc_logins SET expires_at = now() - interval '1 second' WHERE state_hash = %s",
                     (oidc._state_hash(late["state"]),))
    _refused(_callback(client, late), "expired")


def test_a_code_refused_by_the_provider_is_refused(provider, client, tenant):
    back = _at_provider(provider, client, tenant.owner_email)
    _refused(_callback(client, {**back, "code": "not-a-code"}), "refused the sign-in code")


# ---------------------------------------------------------------- the ID token

def _now() -> int:
    return int(time.time())


def _hmac_with_public_key(provider: OidcProvider, claims: dict) -> str:
    """The classic confusion: HS256 "signed" with the published RSA key's PEM as the secret (built by hand:
    PyJWT itself refuses to use a public key as an HMAC secret)."""
    from cryptography.hazmat.primitives import serialization

    def encoded(part: bytes) -> bytes:
        return base64.urlsafe_b64encode(part).rstrip(b"=")

    public = provider.keys.private[PUBLISHED_KID][0].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = b".".join(encoded(json.dumps(part).encode())
                              for part in ({"alg": "HS256", "typ": "JWT", "kid": PUBLISHED_KID}, claims))
    return (signing_input + b"." + encoded(hmac.new(public, signing_input, hashlib.sha256).digest())).decode()


# what is wrong with the token -> (what the 401 says, the token answered instead of the mock's)
REWRITES = {
    "signed by a key the JWKS does not publish, under the mock's key id":
        ("signature does not verify", lambda p, c: p.sign(c, ROGUE_KID, header_kid=p.mock_kid())),
    "signed by a key the JWKS does not publish, under a key id of its own":
        ("a key the provider does not publish", lambda p, c: p.sign(c, ROGUE_KID)),
    "signed by a key the JWKS does not publish, without a key id":
        ("signature does not verify",
         lambda p, c: __import__("jwt").encode(c, p.keys.private[ROGUE_KID][0], algorithm="RS256")),
    "alg none": ("not 'none'", lambda p, c: __import__("jwt").encode(c, None, algorithm="none")),
    "HS256 keyed with the provider's public key": ("not 'HS256'", lambda p, c: _hmac_with_public_key(p, c)),
    "expired": ("expired", lambda p, c: p.sign({**c, "iat": _now() - 7200, "exp": _now() - 600})),
    "issued in the future": ("not yet valid", lambda p, c: p.sign({**c, "iat": _now() + 600, "exp": _now() + 4200})),
    "for another audience": ("not for this client", lambda p, c: p.sign({**c, "aud": "someone-else"})),
    "for several audiences without azp":
        ("another party", lambda p, c: p.sign({**c, "aud": [CLIENT_ID, "someone-else"]})),
    "authorized for another party": ("another party", lambda p, c: p.sign({**c, "azp": "someone-else"})),
    "from another issuer":
        ("not from this provider's issuer", lambda p, c: p.sign({**c, "iss": "https://accounts.example.com"})),
    "of another nonce": ("nonce", lambda p, c: p.sign({**c, "nonce": "another-nonce"})),
    "without a nonce": ("nonce", lambda p, c: p.sign({k: v for k, v in c.items() if k != "nonce"})),
    "without an expiry": ('"exp"', lambda p, c: p.sign({k: v for k, v in c.items() if k != "exp"})),
    "not a JWT": ("not a JWT", lambda p, c: "not-a-jwt"),
}


@pytest.mark.parametrize("rewrite", list(REWRITES), ids=list(REWRITES))
def test_an_id_token_that_does_not_verify_is_refused(provider, client, tenant, rewrite):
    said, token = REWRITES[rewrite]
    provider.rewrite_id_token = lambda claims: token(provider, claims)
    before = _user_row(tenant.tenant_id, tenant.owner_id)["last_login_at"]
    _refused(_sign_in(provider, client, tenant.owner_email), "ID token", said)
    assert _user_row(tenant.tenant_id, tenant.owner_id)["last_login_at"] == before


def test_the_checks_are_not_too_strict(provider, client, tenant):
    """Re-signed by a published key with nothing else changed, the token passes: the refusals above are the
    changed claim's; so do ES256, several audiences with the right azp, and a clock a little behind."""
    for rewrite in (lambda c: provider.sign(c),
                    lambda c: provider.sign(c, PUBLISHED_EC_KID),
                    lambda c: provider.sign({**c, "aud": [CLIENT_ID, "someone-else"], "azp": CLIENT_ID}),
                    lambda c: provider.sign({**c, "iat": _now() + 30, "exp": _now() - 30})):
        provider.rewrite_id_token = rewrite
        assert _sign_in(provider, client, tenant.owner_email).status_code == 200


def test_a_rotated_key_is_fetched_again(provider, client, tenant):
    assert _sign_in(provider, client, tenant.owner_email).status_code == 200  # the JWKS is cached now
    kid = f"rotated-{uuid.uuid4().hex[:6]}"
    provider.publish(kid)
    provider.rewrite_id_token = lambda claims: provider.sign(claims, kid)
    assert _sign_in(provider, client, tenant.owner_email).status_code == 200


# ---------------------------------------------------------------- requests

@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example.com/auth/callback", "{allowed}/../evil", "{allowed}?next=https://evil.example.com",
    "{allowed}/", "{ALLOWED}", "javascript:alert(1)"])
def test_a_redirect_uri_not_allowed_exactly_is_a_422(client, redirect_uri):
    uri = redirect_uri.replace("{allowed}", _redirect_uri()).replace("{ALLOWED}", _redirect_uri().upper())
    answer = _start(client, redirect_uri=uri)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "redirect_uri"]
    with db.control_transaction() as conn:  # nothing was started
        assert conn.execute("SELECT count(*) AS n FROM oidc_logins WHERE redirect_uri = %s",
                            (uri,)).fetchone()["n"] == 0


def test_without_a_redirect_uri_the_frontend_callback_is_used(provider, client):
    answer = client.post("/v1/auth/oidc/mock/start", json={})
    assert answer.status_code == 200
    assert answer.json()["expires_at"]
    assert f"redirect_uri={_redirect_uri().replace(':', '%3A').replace('/', '%2F')}" in \
        answer.json()["authorization_url"]


def test_an_unknown_provider_is_a_404(client):
    assert _start(client, "nobody").status_code == 404
    assert client.post("/v1/auth/oidc/nobody/callback", json={"code": "c", "state": "s"}).status_code == 404


def test_bad_bodies_are_a_422_naming_the_field(client):
    assert client.post("/v1/auth/oidc/mock/callback", json={"state": "s"}).json()["errors"][0]["loc"] == \
        ["body", "code"]
    assert client.post("/v1/auth/oidc/mock/callback", json={"code": "c", "state": "s", "extra": 1}
                       ).status_code == 422
    assert client.post("/v1/auth/oidc/mock/start", json={"redirect_uri": 5}).status_code == 422


def test_callbacks_are_rate_limited_per_address(client):
    limit = get_settings().login_max_attempts_per_ip
    for _ in range(limit):
        _refused(client.post("/v1/auth/oidc/mock/callback", json={"code": "c", "state": uuid.uuid4().hex}))
    refused = client.post("/v1/auth/oidc/mock/callback", json={"code": "c", "state": uuid.uuid4().hex})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0


def test_the_readme_sign_in_runs_as_written_through_the_local_gateway(runtime, provider):
    """The README's block, against the local gateway (the API as a frontend reaches it); the browser step signs
    in at the local provider as a user whose verified e-mail is a workspace owner's."""
    tenant = new_pooled_tenant()
    provider.set_user("readme-user", {"email": tenant.owner_email, "email_verified": True})
    gateway = runtime.api_url.removeprefix("http://")
    script = readme_block("Sign in with Google").replace("localhost:8000", gateway)
    browser = (f"browser_sign_in() {{ curl -s --cacert {provider.ca_file} -o /dev/null -w '%{{redirect_url}}' "
               f"-d sub=readme-user \"$1\"; }}\n")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", browser + script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PROVIDER": "mock", "REDIRECT_URI": _redirect_uri()})
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    me, replayed = done.stdout.splitlines()
    assert json.loads(me) == {"email": tenant.owner_email, "auth_provider": "mock"}
    assert json.loads(replayed) == {"status": 401}
