"""Platform API: self-service sign-up and e-mail verification (issue #18; ``funnel.platform.signup``)."""
from __future__ import annotations

from fastapi import APIRouter, Request

from funnel.api.context import client_ip
from funnel.api.contract import problem_response, problems
from funnel.api.deps import Admin
from funnel.platform import signup
from funnel.platform.models import TokenPair, User
from funnel.platform.models_signup import (
    EmailVerification,
    SignedUp,
    SignupBody,
    SignupWorkspace,
    VerificationMailed,
    VerifyEmailBody,
)

router = APIRouter()


def _retry_after(description: str) -> dict:
    return {"Retry-After": {"description": description, "schema": {"type": "integer"}}}


SIGNUP_PROBLEMS = problems(
    409, 422, 429, 503,
    conflict="`slug` is taken (`errors` names `body.slug`): choose another, or leave it out to have one made",
    validation="A field is not acceptable (`errors` names it): an e-mail address that is not one or is of a "
               "disposable mail service, a weak password, a name with control characters, a value too long",
    rate_limited="Too many sign-ups from this address; retry after `Retry-After` seconds",
    unavailable="The workspace could not be created, and nothing of it was kept; retry after `Retry-After` seconds")
SIGNUP_PROBLEMS[429]["headers"] = _retry_after("seconds until the window that refused the sign-up ends")
SIGNUP_PROBLEMS[503]["headers"] = _retry_after("seconds to wait before trying again")


@router.post("/signup", status_code=201, tags=["auth"], responses=SIGNUP_PROBLEMS)
def sign_up(body: SignupBody, request: Request) -> SignedUp:
    """Create a workspace (pooled) with its owner, signed in: the answer carries the owner's tokens. The owner's
    address gets a verification link; until it is opened the workspace configures everything but sends nothing
    (outreach submissions, e-mail campaigns and publishing answer 403)."""
    made = signup.sign_up(body.workspace_name, body.email, body.password, body.slug, client_ip(request))
    return SignedUp(workspace=SignupWorkspace.model_validate(made.workspace), owner=User.model_validate(made.owner),
                    tokens=TokenPair.model_validate(made.tokens))


@router.post("/auth/verify-email", tags=["auth"], responses={401: problem_response(
    401, "The link is invalid, expired or already used (one answer for every reason): ask for a new one")})
def verify_email(body: VerifyEmailBody) -> EmailVerification:
    """Spend the mailed link (it works once) and mark the workspace verified: it may send from now on."""
    row = signup.verify_email(body.token)
    return EmailVerification(workspace_id=str(row["id"]), slug=row["slug"], email_verified=True,
                             email_verified_at=row["email_verified_at"])


RESEND_PROBLEMS = problems(409, 429, conflict="The workspace's e-mail address is already verified",
                           rate_limited="Too many verification mails asked for; retry after `Retry-After` seconds")
RESEND_PROBLEMS[429]["headers"] = _retry_after("seconds until the window that refused the request ends")


@router.post("/auth/verify-email/resend", status_code=202, tags=["auth"], responses=RESEND_PROBLEMS)
def resend_verification(principal: Admin) -> VerificationMailed:
    """Mail a new verification link to the caller (an owner or an admin); the links mailed before stop working."""
    return VerificationMailed.model_validate(signup.resend_verification(principal))
