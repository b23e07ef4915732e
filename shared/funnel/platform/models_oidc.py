"""Request and response models of sign-in with an OpenID provider (``routes_oidc``)."""
from __future__ import annotations

from datetime import datetime

from pydantic import Field

from funnel.api.contract import Out
from funnel.api.deps import StrictModel


class OidcStartBody(StrictModel):
    redirect_uri: str | None = Field(
        default=None, max_length=2000,
        description="where the provider sends the browser back with `code` and `state`: exactly one of the "
                    "allowed redirect URIs (by default the hosted frontend's `/auth/callback`); omitted, the first")


class OidcStarted(Out):
    """A sign-in under way: send the browser to `authorization_url`; keep `state` and check that the provider
    sends the same one back before finishing the sign-in."""

    authorization_url: str = Field(description="the provider's authorization URL (code flow, PKCE S256, state, nonce)")
    state: str = Field(description="comes back with the provider's redirect; POST it with `code` to the callback")
    expires_at: datetime = Field(description="the sign-in must be finished before this time")


class OidcCallbackBody(StrictModel):
    code: str = Field(min_length=1, max_length=4096, description="the `code` the provider sent back")
    state: str = Field(min_length=1, max_length=512, description="the `state` the provider sent back")
    tenant: str | None = Field(default=None, max_length=63,
                               description="workspace slug, when the e-mail has a user in several")
