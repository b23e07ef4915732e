"""Platform API: password reset (by an e-mailed single-use link) and password change (``funnel.platform.recovery``).
Logout is ``POST /v1/auth/logout`` (``routes``)."""
from __future__ import annotations

from fastapi import APIRouter, Request

from funnel.api.context import client_ip
from funnel.api.contract import problem_response, problems
from funnel.api.deps import CurrentPrincipal
from funnel.platform import recovery
from funnel.platform.models_recovery import (
    PasswordChange,
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
)

router = APIRouter()

RESET_PROBLEMS = problems(429, rate_limited="Too many reset requests from this client address or for this e-mail "
                                            "address (counted whether or not it has an account); retry after "
                                            "`Retry-After` seconds")
RESET_PROBLEMS[429]["headers"] = {"Retry-After": {"description": "seconds until the window that refused the "
                                                                 "request ends", "schema": {"type": "integer"}}}


@router.post("/auth/password-reset", status_code=202, tags=["auth"], responses=RESET_PROBLEMS)
def request_password_reset(body: PasswordResetRequest, request: Request) -> PasswordResetAccepted:
    """Mail a single-use link (15 minutes) to each workspace account of the address. The answer is the same, and
    comes after the same time, whether or not the address has an account."""
    recovery.request_reset(body.email, client_ip(request))
    return PasswordResetAccepted(detail=recovery.RESET_ANSWER)


@router.post("/auth/password-reset/confirm", status_code=204, tags=["auth"], responses={
    401: problem_response(401, "The link is invalid, expired or already used"),
    422: problem_response(422, "The request is not valid, or `new_password` breaks the rules (at least 10 "
                               "characters, not the account's e-mail); the link stays unspent")})
def confirm_password_reset(body: PasswordResetConfirm) -> None:
    """Set a new password with the link's token (once); every session of the user ends: sign in again."""
    recovery.confirm_reset(body.token, body.new_password)


@router.post("/auth/password", status_code=204, tags=["auth"], responses={
    **problems(403, 429, forbidden="Called with an API key: a password is changed from a signed-in session",
               rate_limited="Too many wrong passwords for this account or address (the sign-in limits); retry "
                            "after `Retry-After` seconds"),
    422: problem_response(422, "The request is not valid: `current_password` is wrong, or `new_password` breaks "
                               "the rules (at least 10 characters, not the account's e-mail)")})
def change_password(body: PasswordChange, principal: CurrentPrincipal) -> None:
    """Change the signed-in user's password; their other sessions end, this one goes on."""
    recovery.change_password(principal, body.current_password, body.new_password)
