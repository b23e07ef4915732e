"""Sign-in with an OpenID provider: the configuration's rules, without a provider or a database (the flow itself is
tests/integration/platform/test_oidc.py)."""
from __future__ import annotations

import json

import pytest

from funnel.platform import oidc
from funnel.platform.errors import NotFound, ServiceUnavailable, ValidationFailed
from funnel.settings import reset_settings

GOOGLE = {"id": "google", "issuer": "https://accounts.google.com", "client_id": "123.apps.googleusercontent.com",
          "client_secret_id": "funnel/google-oauth"}


@pytest.fixture
def configure(monkeypatch):
    def configure(providers: list[dict], redirect_uris: list[str] | None = None) -> None:
        monkeypatch.setenv("FUNNEL_OIDC_PROVIDERS", json.dumps(providers))
        monkeypatch.setenv("FUNNEL_FRONTEND_ORIGIN", "https://app.example.com/")
        if redirect_uris is not None:
            monkeypatch.setenv("FUNNEL_OIDC_REDIRECT_URIS", json.dumps(redirect_uris))
        reset_settings()

    yield configure
    reset_settings()


def test_a_provider_is_found_by_its_id_with_openid_email_scopes_by_default(configure):
    configure([GOOGLE])
    google = oidc.provider("google")
    assert google.issuer == "https://accounts.google.com" and google.scopes == ("openid", "email")
    with pytest.raises(NotFound):
        oidc.provider("github")


def test_none_configured_means_every_provider_is_unknown(configure):
    configure([])
    with pytest.raises(NotFound):
        oidc.provider("google")


@pytest.mark.parametrize("entry", [
    {**GOOGLE, "issuer": "http://accounts.google.com"},
    {**GOOGLE, "issuer": "https://accounts.google.com/"},
    {**GOOGLE, "scopes": ["openid", "profile"]},
    {**GOOGLE, "id": "Google!"},
    {**GOOGLE, "client_id": ""},
    {**GOOGLE, "unexpected": True},
    {k: v for k, v in GOOGLE.items() if k != "client_id"},
], ids=["http issuer", "trailing slash", "no email scope", "bad id", "empty client id", "unknown key",
        "no client id"])
def test_a_misconfigured_provider_is_a_503_not_a_crash(configure, entry):
    configure([entry])
    with pytest.raises(ServiceUnavailable):
        oidc.provider("google")


def test_the_redirect_uri_defaults_to_the_frontend_callback_and_matches_exactly(configure):
    configure([GOOGLE])
    assert oidc.allowed_redirect_uris() == ["https://app.example.com/auth/callback"]
    assert oidc._redirect_uri(None) == "https://app.example.com/auth/callback"
    for wrong in ("https://app.example.com/auth/callback/", "https://app.example.com/auth/callback?x=1",
                  "https://APP.example.com/auth/callback", "https://app.example.com.evil.com/auth/callback"):
        with pytest.raises(ValidationFailed) as refused:
            oidc._redirect_uri(wrong)
        assert refused.value.extra["errors"][0]["loc"] == ["body", "redirect_uri"]


def test_configured_redirect_uris_replace_the_default(configure):
    configure([GOOGLE], ["https://app.example.com/auth/callback", "https://admin.example.com/oidc"])
    assert oidc._redirect_uri("https://admin.example.com/oidc") == "https://admin.example.com/oidc"
    assert oidc._redirect_uri(None) == "https://app.example.com/auth/callback"


def test_the_pkce_challenge_is_rfc_7636_s256():
    # RFC 7636, appendix B
    assert oidc._code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
