"""Sign-in with an OpenID provider (Google, or any OpenID Connect issuer configured in ``oidc_providers``).

The authorization code flow with PKCE (S256), a random ``state`` and ``nonce``:

1. ``start`` records the sign-in in the control DB (``oidc_logins``, by the SHA-256 of the state: the state
   itself only travels through the browser) with its nonce, PKCE verifier and redirect URI for
   ``LOGIN_TTL_SECONDS``, and answers the provider's authorization URL.
2. The provider sends the browser back to the redirect URI (the hosted frontend's page) with ``code`` and
   ``state``; the frontend checks the state is the one it started with and POSTs both to the API.
3. ``callback`` spends the state (once: unknown, expired or reused is a 401), exchanges the code at the token
   endpoint with the verifier, and verifies the ID token: its signature by the provider's JWKS (RS256 or ES256
   only), ``iss``, ``aud`` (and ``azp``), ``exp`` / ``iat`` with ``LEEWAY_SECONDS``, and the nonce. The user is
   found only by a verified e-mail (``email_verified``) in the login directory: no account is ever created here.

The provider's discovery document and JWKS are fetched over HTTPS through the SSRF guard's pinned client and
kept ``METADATA_TTL_SECONDS`` per process; a key id the cached JWKS does not know fetches it again (keys rotate).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from funnel import db
from funnel.observability import logger, tracer
from funnel.platform import audit, auth, ratelimit, ssrf, store_oidc, store_tenants, store_users
from funnel.platform.errors import NotFound, ServiceUnavailable, Unauthorized, ValidationFailed
from funnel.platform.principal import Principal
from funnel.platform.secrets import get_secret
from funnel.settings import get_settings

if TYPE_CHECKING:
    import httpx
    from jwt import PyJWK

LOGIN_TTL_SECONDS = 600
METADATA_TTL_SECONDS = 300.0
LEEWAY_SECONDS = 60
# Asymmetric signatures only: never "none", never HS* (an HMAC "signed" with the provider's public key).
ALGORITHMS = ("RS256", "ES256")
HTTP_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 1_000_000
CALLBACK_PATH = "/auth/callback"
RESTART = "start the sign-in again"


class Provider(BaseModel):
    """One entry of ``oidc_providers``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,29}$")
    issuer: str = Field(min_length=9, max_length=500)
    client_id: str = Field(min_length=1, max_length=500)
    client_secret_id: str | None = Field(default=None, min_length=1, max_length=2048)
    scopes: tuple[str, ...] = ("openid", "email")

    @field_validator("issuer")
    @classmethod
    def _https(cls, issuer: str) -> str:
        if not issuer.startswith("https://") or issuer.endswith("/") or "?" in issuer or "#" in issuer:
            raise ValueError("an issuer is an https URL without a trailing slash, query or fragment")
        return issuer

    @field_validator("scopes")
    @classmethod
    def _openid_and_email(cls, scopes: tuple[str, ...]) -> tuple[str, ...]:
        if not {"openid", "email"} <= set(scopes):
            raise ValueError("scopes must include openid and email (the user is found by a verified e-mail)")
        return scopes


@dataclass(frozen=True)
class Metadata:
    """What the flow needs of the provider's discovery document."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: tuple[str, ...]


# Per process, by issuer / JWKS URL: (monotonic time it was fetched, value).
_metadata: dict[str, tuple[float, Metadata]] = {}
_jwks: dict[str, tuple[float, list[tuple[str | None, PyJWK]]]] = {}
_cache_lock = threading.Lock()


def forget_cached_metadata() -> None:
    """Drop the cached discovery documents and key sets (the next sign-in fetches them again)."""
    with _cache_lock:
        _metadata.clear()
        _jwks.clear()


# ---------------------------------------------------------------- configuration

def providers() -> dict[str, Provider]:
    """The configured providers by id; a bad entry is the operator's error, answered as a 503 (logged)."""
    try:
        configured = [Provider.model_validate(entry) for entry in get_settings().oidc_providers]
    except ValidationError as exc:
        logger.error("oidc_providers is misconfigured", extra={"errors": exc.errors(include_input=False)})
        raise ServiceUnavailable("sign-in with an OpenID provider is misconfigured") from exc
    return {p.id: p for p in configured}


def provider(provider_id: str) -> Provider:
    found = providers().get(provider_id)
    if found is None:
        raise NotFound(f"no OpenID provider {provider_id!r} is configured")
    return found


def allowed_redirect_uris() -> list[str]:
    settings = get_settings()
    return settings.oidc_redirect_uris or [settings.frontend_origin.rstrip("/") + CALLBACK_PATH]


def _redirect_uri(requested: str | None) -> str:
    allowed = allowed_redirect_uris()
    if requested is None:
        return allowed[0]
    if requested not in allowed:  # exact match only: no prefixes, no patterns (no open redirects)
        raise ValidationFailed.at(["body", "redirect_uri"], f"must be one of {allowed}")
    return requested


# ---------------------------------------------------------------- the flow

def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _code_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def start(provider_id: str, redirect_uri: str | None) -> dict[str, Any]:
    """A new sign-in with the provider: ``authorization_url`` (where the browser goes), ``state`` (the frontend
    keeps it and checks the one that comes back) and ``expires_at`` (when the sign-in can no longer finish)."""
    chosen = provider(provider_id)
    redirect = _redirect_uri(redirect_uri)
    metadata = _provider_metadata(chosen)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    with db.control_transaction() as conn:
        row = store_oidc.insert_login(conn, _state_hash(state), chosen.id, nonce, verifier, redirect,
                                      LOGIN_TTL_SECONDS)
        store_oidc.prune_expired(conn)
    query = urlencode({"response_type": "code", "client_id": chosen.client_id, "redirect_uri": redirect,
                       "scope": " ".join(chosen.scopes), "state": state, "nonce": nonce,
                       "code_challenge": _code_challenge(verifier), "code_challenge_method": "S256"})
    endpoint = metadata.authorization_endpoint
    return {"authorization_url": f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", "state": state,
            "expires_at": row["expires_at"]}


def callback(provider_id: str, code: str, state: str, tenant_slug: str | None, ip: str | None) -> dict[str, Any]:
    """Finish a sign-in: the token pair of the Funnel user whose verified e-mail the provider vouches for.

    Counted against the caller's address (``ratelimit``; a success is taken back). The state is spent first,
    whatever happens next: a failed sign-in starts again."""
    chosen = provider(provider_id)
    settings = get_settings()
    reservation = ratelimit.reserve({f"oidc:ip:{ip or 'unknown'}": settings.login_max_attempts_per_ip},
                                    settings.login_window_seconds, "too many sign-in attempts; try again later")
    with db.control_transaction() as conn:
        login = store_oidc.spend(conn, _state_hash(state), chosen.id)
    if login is None or not login["live"]:
        raise Unauthorized(f"this sign-in is unknown, expired or already finished; {RESTART}")
    metadata = _provider_metadata(chosen)
    id_token = _exchange_code(chosen, metadata, code, login["code_verifier"], login["redirect_uri"])
    claims = verify_id_token(chosen, metadata, id_token, login["nonce"])
    email = _verified_email(claims)
    tenant_id, user = _user_of(email, tenant_slug)
    with db.tenant_transaction(tenant_id) as conn:
        store_users.record_login(conn, str(user["id"]), chosen.id)
        audit.record(conn, Principal(tenant_id, str(user["id"]), "viewer", ip=ip), "auth.login", "user",
                     str(user["id"]), {"provider": chosen.id})
    ratelimit.release(reservation)
    return auth.start_session(tenant_id, user)


def _verified_email(claims: dict[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise Unauthorized("the provider gave no e-mail address; allow the e-mail scope")
    # Most providers give a boolean; some (Amazon Cognito) the string "true".
    if claims.get("email_verified") not in (True, "true"):
        raise Unauthorized(f"the provider has not verified {email}: verify it there, or sign in with a password")
    return email


def _user_of(email: str, tenant_slug: str | None) -> tuple[str, dict[str, Any]]:
    """(tenant id, user) of the one enabled Funnel user of ``email`` (in ``tenant_slug`` when named)."""
    with db.control_transaction() as conn:
        entries = store_tenants.login_entries(conn, email)
    if tenant_slug is not None:
        entries = [e for e in entries if e["slug"] == tenant_slug]
    if not entries:
        where = f" in the workspace {tenant_slug!r}" if tenant_slug is not None else ""
        raise Unauthorized(f"no Funnel user has the e-mail {email}{where}; sign up first, or ask the workspace's "
                           f"admin for an invitation")
    usable = []
    for entry in entries:
        with db.tenant_transaction(entry["tenant_id"]) as conn:
            user = store_users.principal_user(conn, str(entry["user_id"]))
        # A pending invitation (no password yet) is accepted first, through its link.
        if user is not None and user["active"] and not user["disabled"]:
            usable.append((entry["tenant_id"], entry["slug"], user))
    if not usable:
        raise Unauthorized(f"the Funnel user of {email} is disabled, or has not accepted its invitation yet")
    if len(usable) > 1:
        raise auth.choose_workspace(f"{email} has a user in several workspaces", [slug for _, slug, _ in usable])
    tenant_id, _, user = usable[0]
    return tenant_id, dict(user)


# ---------------------------------------------------------------- the ID token

def verify_id_token(chosen: Provider, metadata: Metadata, id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims once its signature, issuer, audience, times and nonce hold; else a 401."""
    import jwt  # on first use: PyJWT's cryptography backend is cold start no other route needs

    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise Unauthorized("the ID token is not a JWT") from exc
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in ALGORITHMS:
        raise Unauthorized(f"the ID token must be signed with {' or '.join(ALGORITHMS)}, not {algorithm!r}")
    if kid is not None and not isinstance(kid, str):
        raise Unauthorized("the ID token's key id is not valid")
    keys: list[PyJWK] = []
    for refresh in (False, True):  # no key of the cached set verifies: fetch the set again, once (keys rotate)
        keys = _signing_keys(metadata.jwks_uri, kid, algorithm, refresh)
        for key in keys:
            try:
                claims = jwt.decode(id_token, key.key, algorithms=[algorithm], audience=chosen.client_id,
                                    issuer=chosen.issuer, leeway=LEEWAY_SECONDS,
                                    options={"require": ["iss", "aud", "exp", "iat", "sub"]})
            except jwt.InvalidSignatureError:
                continue  # without a key id, the next key of the set may be the one
            except jwt.ExpiredSignatureError as exc:
                raise Unauthorized("the ID token has expired") from exc
            except jwt.InvalidAudienceError as exc:
                raise Unauthorized("the ID token is not for this client") from exc
            except jwt.InvalidIssuerError as exc:
                raise Unauthorized("the ID token is not from this provider's issuer") from exc
            except jwt.PyJWTError as exc:
                raise Unauthorized(f"the ID token is not valid: {exc}") from exc
            return _checked_claims(chosen, claims, nonce)
    if keys:
        raise Unauthorized("the ID token's signature does not verify")
    raise Unauthorized("the ID token is signed by a key the provider does not publish")


def _checked_claims(chosen: Provider, claims: dict[str, Any], nonce: str) -> dict[str, Any]:
    """What PyJWT does not check: the authorized party of a token of several audiences, and the nonce."""
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != chosen.client_id:
        raise Unauthorized("the ID token was issued to another party (azp)")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise Unauthorized(f"the ID token is not the one of this sign-in (nonce); {RESTART}")
    return claims


def _signing_keys(jwks_uri: str, kid: str | None, algorithm: str, refresh: bool) -> list[PyJWK]:
    """The provider's keys that may have signed a token of ``kid`` (any key, without one) and ``algorithm``."""
    return [key for key_id, key in _key_set(jwks_uri, refresh)
            if key.algorithm_name == algorithm and (kid is None or key_id == kid)]


def _key_set(jwks_uri: str, refresh: bool) -> list[tuple[str | None, PyJWK]]:
    """The provider's RS256 / ES256 signing keys with their key ids (cached; ``refresh`` fetches them again)."""
    import jwt  # see verify_id_token

    now = time.monotonic()
    with _cache_lock:
        hit = _jwks.get(jwks_uri)
    if hit and not refresh and now - hit[0] < METADATA_TTL_SECONDS:
        return hit[1]
    document = _get_json(jwks_uri, "oidc.jwks")
    keys: list[tuple[str | None, PyJWK]] = []
    entries = document.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError):  # a key type or curve PyJWT cannot use: not one of ours
            continue
        if key.algorithm_name in ALGORITHMS:
            keys.append((entry.get("kid") if isinstance(entry.get("kid"), str) else None, key))
    with _cache_lock:
        _jwks[jwks_uri] = (now, keys)
    return keys


# ---------------------------------------------------------------- the provider's endpoints

def _provider_metadata(chosen: Provider) -> Metadata:
    """The provider's discovery document (cached), checked: its issuer is the configured one, its endpoints
    https URLs."""
    now = time.monotonic()
    with _cache_lock:
        hit = _metadata.get(chosen.issuer)
    if hit and now - hit[0] < METADATA_TTL_SECONDS:
        return hit[1]
    document = _get_json(f"{chosen.issuer}/.well-known/openid-configuration", "oidc.discovery")
    if document.get("issuer") != chosen.issuer:
        raise ServiceUnavailable(f"the OpenID provider {chosen.id!r} names another issuer "
                                 f"({document.get('issuer')!r}) than the configured one")
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        url = document.get(name)
        if not isinstance(url, str) or not url.startswith("https://"):
            raise ServiceUnavailable(f"the OpenID provider {chosen.id!r} gives no https {name}")
        endpoints[name] = url
    methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    metadata = Metadata(**endpoints, token_auth_methods=tuple(m for m in methods if isinstance(m, str)))
    with _cache_lock:
        _metadata[chosen.issuer] = (now, metadata)
    return metadata


def _exchange_code(chosen: Provider, metadata: Metadata, code: str, verifier: str, redirect_uri: str) -> str:
    """The ID token the token endpoint gives for ``code`` (a refused code is a 401)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    basic: tuple[str, str] | None = None
    secret = _client_secret(chosen)
    if secret is not None and ("client_secret_basic" in metadata.token_auth_methods
                               or "client_secret_post" not in metadata.token_auth_methods):
        # RFC 6749 2.3.1: both form-encoded before they are joined.
        basic = (quote_plus(chosen.client_id), quote_plus(secret))
    else:
        form["client_id"] = chosen.client_id
        if secret is not None:
            form["client_secret"] = secret
    status, document = _request_json("POST", metadata.token_endpoint, "oidc.token", data=form, auth=basic)
    if status in (400, 401):
        error = document.get("error")
        error = error if isinstance(error, str) else "refused"
        raise Unauthorized(f"the provider refused the sign-in code ({error[:100]}); {RESTART}")
    if status != 200:
        raise ServiceUnavailable(f"the OpenID provider {chosen.id!r} answered {status}")
    id_token = document.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise Unauthorized("the provider gave no ID token (is the openid scope allowed?)")
    return id_token


def _client_secret(chosen: Provider) -> str | None:
    """The client secret from Secrets Manager: the secret's string, or its ``client_secret`` field."""
    if chosen.client_secret_id is None:
        return None
    value = get_secret(chosen.client_secret_id)
    secret = value.get("client_secret") if isinstance(value, dict) else value
    if not isinstance(secret, str) or not secret:
        raise ServiceUnavailable(f"the client secret of the OpenID provider {chosen.id!r} is not set")
    return secret


def _get_json(url: str, segment: str) -> dict[str, Any]:
    status, document = _request_json("GET", url, segment)
    if status != 200:
        raise ServiceUnavailable(f"the OpenID provider answered {status} for {url}")
    return document


def _request_json(method: str, url: str, segment: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """(status, JSON object) of one request through the SSRF guard's pinned client (no redirects followed);
    a provider that cannot be reached, or answers no JSON object, is a 503."""
    import httpx  # on first use, as funnel.platform.ssrf does

    try:
        with tracer.subsegment(segment), ssrf.http_client(timeout=HTTP_TIMEOUT_SECONDS, verify=_tls(),
                                                          headers={"Accept": "application/json"}) as client:
            with client.stream(method, url, **kwargs) as response:
                body = _read_capped(response)
    except (httpx.HTTPError, ssrf.UnsafeUrlError) as exc:
        raise ServiceUnavailable(f"the OpenID provider cannot be reached ({type(exc).__name__}: {exc})") from exc
    try:
        document = json.loads(body)
    except ValueError:  # UnicodeDecodeError too
        document = None
    if not isinstance(document, dict):
        if response.status_code == 200:
            raise ServiceUnavailable(f"the OpenID provider answered no JSON object for {url}")
        document = {}
    return response.status_code, document


def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > MAX_RESPONSE_BYTES:
            raise ServiceUnavailable("the OpenID provider's answer is too large")
    return bytes(body)


def _tls() -> ssl.SSLContext | bool:
    """True (the default trust store) unless ``oidc_ca_file`` names a CA bundle to trust instead."""
    ca_file = get_settings().oidc_ca_file
    return _tls_with(ca_file) if ca_file else True


@lru_cache(maxsize=4)
def _tls_with(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)
