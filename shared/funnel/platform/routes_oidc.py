"""Platform API: sign-in with an OpenID provider (issue #18; the flow and its checks are ``funnel.platform.oidc``).

Both routes are public (``funnel.api.context.PUBLIC_PREFIXES``): they are how a caller gets a token."""
from __future__ import annotations

from fastapi import APIRouter, Path, Request

from funnel.api.context import client_ip
from funnel.api.contract import problem_response, problems
from funnel.platform import oidc
from funnel.platform.models import TokenPair
from funnel.platform.models_oidc import OidcCallbackBody, OidcStartBody, OidcStarted

router = APIRouter()

ProviderId = Path(max_length=30, description="the provider's id in the configuration (`google`)")

START_PROBLEMS = problems(
    404, 422, 503,
    not_found="No OpenID provider of that id is configured",
    validation="The request is not valid, or `redirect_uri` is not one of the allowed redirect URIs",
    unavailable="The provider cannot be reached, or its configuration or discovery document is not usable")

CALLBACK_PROBLEMS = {
    **problems(
        404, 422, 429, 503,
        not_found="No OpenID provider of that id is configured",
        validation="The request is not valid, or the e-mail has a user in several workspaces and `tenant` names "
                   "none (`tenants` lists their slugs)",
        rate_limited="Too many sign-in attempts from this address; retry after `Retry-After` seconds",
        unavailable="The provider cannot be reached, or its configuration or discovery document is not usable"),
    401: problem_response(
        401, "The sign-in is unknown, expired or already finished (start again), the provider refused the code, "
             "the ID token does not verify (signature, issuer, audience, expiry, nonce), its e-mail is not "
             "verified, or no enabled Funnel user has that e-mail (sign up first: no account is created here)"),
}
CALLBACK_PROBLEMS[429]["headers"] = {"Retry-After": {"description": "seconds until the window that refused the "
                                                                    "attempt ends", "schema": {"type": "integer"}}}


@router.post("/auth/oidc/{provider}/start", tags=["auth"], responses=START_PROBLEMS)
def start_oidc_sign_in(body: OidcStartBody, provider: str = ProviderId) -> OidcStarted:
    """Start signing in with an OpenID provider: the browser goes to `authorization_url`, and the provider sends
    it back to `redirect_uri` with `code` and `state` (within 10 minutes)."""
    return OidcStarted.model_validate(oidc.start(provider, body.redirect_uri))


@router.post("/auth/oidc/{provider}/callback", tags=["auth"], responses=CALLBACK_PROBLEMS)
def finish_oidc_sign_in(body: OidcCallbackBody, request: Request, provider: str = ProviderId) -> TokenPair:
    """Finish signing in with the `code` and `state` the provider sent back: the tokens of the Funnel user whose
    verified e-mail the provider vouches for (the same session as a password sign-in)."""
    return TokenPair.model_validate(oidc.callback(provider, body.code, body.state, body.tenant, client_ip(request)))
