"""Request and response models of sign-up and e-mail verification (``routes_signup``)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from funnel.api.contract import Out
from funnel.api.deps import Email, StrictModel
from funnel.platform.models import TokenPair, User
from funnel.platform.tenants import SLUG_RE


class SignupBody(StrictModel):
    workspace_name: str = Field(min_length=1, max_length=200, description="the workspace's display name")
    email: Email = Field(description="the owner's address: the verification link is mailed to it (no disposable "
                                     "mail services)")
    password: str = Field(min_length=10, max_length=1024, description="at least 10 characters, not the e-mail "
                                                                      "address, not one character repeated")
    slug: str | None = Field(default=None, pattern=SLUG_RE.pattern,
                             description="the workspace's short name (sign-in's `tenant`); left out, one is made "
                                         "from the name (with a random suffix when that one is taken)")


class SignupWorkspace(Out):
    id: str
    slug: str
    name: str
    isolation: Literal["pool", "silo"] = Field(description="`pool`: a place in a shared database (self-service "
                                                           "workspaces start there); `silo`: a database of its own")
    email_verified: bool = Field(description="false until the owner opens the mailed link: until then the "
                                             "workspace configures everything but sends nothing")


class SignedUp(Out):
    """The new workspace, its owner, and the owner's session (already signed in)."""

    workspace: SignupWorkspace
    owner: User
    tokens: TokenPair


class VerifyEmailBody(StrictModel):
    token: str = Field(min_length=1, max_length=4096, description="the `token` of the mailed link")


class EmailVerification(Out):
    workspace_id: str
    slug: str
    email_verified: bool
    email_verified_at: datetime | None


class VerificationMailed(Out):
    email: str = Field(description="where the new link was mailed (the caller's address)")
    expires_in: int = Field(description="seconds the link works for")
