"""Self-service sign-up and e-mail verification (issue #18, item 1).

``sign_up`` checks what a stranger sends (``check_*``: a 422 naming the field, before anything is counted or
written), counts the attempt against the client address's window, and has the deployment's operations function
(inside the VPC: it creates databases, which the API cannot) provision the workspace, unverified, in
``signup_isolation`` (default pooled). The owner is signed in at once, and a signed single-use link
(``account_tokens``) is mailed through the notifications e-mail channel.

An unverified workspace signs in and configures everything, but sends nothing: ``tenants.require_email_verified``
gates outreach submissions, e-mail campaigns and publishing. ``verify_email`` spends the link and records the
verification in the control DB; ``resend_verification`` voids the caller's older links and mails a new one.
"""
from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from funnel import db
from funnel.db import Row
from funnel.observability import logger
from funnel.platform import account_tokens, audit, auth, ratelimit, store_tenants, store_users
from funnel.platform.errors import Conflict, ServiceUnavailable, Unauthorized, ValidationFailed
from funnel.platform.principal import Principal
from funnel.platform.tenants import directory, slugify
from funnel.platform.users import check_new_password, record_login
from funnel.settings import get_settings

# Characters a name must not hold: controls (tab and newline included), lone surrogates (no UTF-8 text holds
# them: they would fail in the database), line and paragraph separators, and the bidirectional overrides and
# isolates, which make a name read differently from what it is (in a mail's subject, a list of workspaces).
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# A derived slug that is taken gets this many random hex characters (3 bytes: 16.7 million choices).
SUFFIX_BYTES = 3
SUFFIX_TRIES = 4
UNAVAILABLE = "the workspace could not be created, and nothing of it was kept: try again in a minute"


# ---------------------------------------------------------------- rules (no I/O)

def check_name(name: str, loc: list[str | int]) -> str:
    """A display name (stripped; the body's length limits already held): no character of REFUSED_CATEGORIES or
    BIDI_CONTROLS, not empty."""
    for char in name:
        if unicodedata.category(char) in REFUSED_CATEGORIES or char in BIDI_CONTROLS:
            raise ValidationFailed.at(loc, f"must not contain control characters (U+{ord(char):04X})",
                                      "string_control_character")
    name = name.strip()
    if not name:
        raise ValidationFailed.at(loc, "must not be empty", "string_too_short")
    return name


def check_email(email: str, loc: list[str | int]) -> str:
    """The address normalised (domain lower-cased, IDNA in ASCII), or a 422: syntax as e-mail-validator reads it
    (no DNS look-up: that is the mail's job), an ASCII local part (SES sends no SMTPUTF8), and no disposable
    domain. Role addresses (info@, admin@) are fine: small companies sign up with them."""
    from email_validator import EmailNotValidError, validate_email  # lazy: only sign-up pays its ~30 ms

    try:
        checked = validate_email(email, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValidationFailed.at(loc, str(exc), "value_error.email") from exc
    address = checked.ascii_email or checked.normalized
    if is_disposable(checked.ascii_domain):
        raise ValidationFailed.at(loc, "addresses of disposable mail services cannot sign up: use a lasting one",
                                  "value_error.email_disposable")
    return address


def is_disposable(domain: str) -> bool:
    """Whether ``domain`` or a domain above it is on the maintained blocklist of disposable mail services
    (``disposable-email-domains``), so ``x.mailinator.com`` is caught with ``mailinator.com``."""
    from disposable_email_domains import blocklist  # lazy: a set of ~10,000 domains, for sign-up only

    labels = domain.lower().rstrip(".").split(".")
    return any(".".join(labels[i:]) in blocklist for i in range(len(labels) - 1))


def check_password(password: str, email: str, loc: list[str | int]) -> None:
    """What ``users.check_new_password`` asks of any chosen password (length, not the e-mail), and not one
    character repeated; no lone surrogate (it cannot be hashed as UTF-8)."""
    check_new_password(password, email, loc)
    if len(set(password)) == 1:
        raise ValidationFailed.at(loc, "must not be one character repeated", "value_error")
    if any(unicodedata.category(char) == "Cs" for char in password):
        raise ValidationFailed.at(loc, "must be valid Unicode text (it holds a lone surrogate)", "value_error")


def with_suffix(slug: str) -> str:
    """``slug`` with a short random suffix, still a valid slug."""
    return f"{slug[:40].rstrip('-')}-{secrets.token_hex(SUFFIX_BYTES)}"


# ---------------------------------------------------------------- sign-up

@dataclass(frozen=True)
class SignedUp:
    workspace: dict[str, Any]
    owner: Row
    tokens: dict[str, Any]


def sign_up(workspace_name: str, email: str, password: str, slug: str | None, ip: str | None) -> SignedUp:
    """A new workspace with its signed-in owner, unverified; the verification link is mailed to ``email``."""
    settings = get_settings()
    name = check_name(workspace_name, ["body", "workspace_name"])
    email = check_email(email, ["body", "email"])
    check_password(password, email, ["body", "password"])
    reservation = ratelimit.reserve({f"signup:ip:{ip or 'unknown'}": settings.signup_max_per_ip},
                                    settings.signup_window_seconds, "too many sign-ups from this address; "
                                                                    "try again later")
    try:
        report = _provision(name, email, password, slug)
    except ServiceUnavailable:
        ratelimit.release(reservation)  # our failure, and nothing was created: it does not count
        raise
    tenant, owner_id = report.tenants[0], str(report.owner_id)
    record_login(tenant.id, owner_id, ip)  # the owner is signed in by signing up
    with db.tenant_transaction(tenant.id) as conn:
        owner = store_users.get_user(conn, owner_id)
        audit.record(conn, owner_id, "workspace.signup", "tenant", tenant.id,
                     {"ip": ip, "isolation": tenant.isolation})
    assert owner is not None  # provisioning created it
    tokens = auth.start_session(tenant.id, owner)
    try:
        _mail_link(tenant.id, owner_id, tenant.name)
    except Exception:  # the workspace exists and its owner is signed in: a new link is one resend away
        logger.exception("sign-up: the verification mail could not be written", extra={"tenant_id": tenant.id})
    workspace = {"id": tenant.id, "slug": tenant.slug, "name": tenant.name, "isolation": tenant.isolation,
                 "email_verified": False}
    return SignedUp(workspace=workspace, owner=owner, tokens=tokens)


def _slug_taken(slug: str) -> bool:
    with db.control_transaction() as conn:
        return store_tenants.slug_taken(conn, slug)


def _provision(name: str, email: str, password: str, chosen_slug: str | None):
    """The operations function's report of the new workspace. A chosen slug that is taken is a 409 naming it; a
    derived one (the user did not choose it) gets a random suffix instead. Any other failure is a 503, and
    provisioning removed whatever it had made."""
    from funnel.platform import operations_remote  # lazy: boto3's Lambda client serves sign-up only

    slug = chosen_slug or slugify(name)
    for _ in range(SUFFIX_TRIES):
        if _slug_taken(slug):
            if chosen_slug:
                raise _slug_conflict(slug)
            slug = with_suffix(slug)
            continue
        event = {"action": "provision_tenant", "name": name, "owner_email": email, "owner_password": password,
                 "slug": slug, "isolation": get_settings().signup_isolation, "email_verified": False}
        try:
            report = operations_remote.run_in_operations_function(event)
        except Exception as exc:
            logger.exception("sign-up: the operations function failed", extra={"slug": slug})
            raise ServiceUnavailable(UNAVAILABLE) from exc
        assert report is not None  # waited for
        if report.ok and report.tenants and report.owner_id:
            return report
        # Refused: either another sign-up took the slug since the check above (try again), or something else.
        if not _slug_taken(slug):
            logger.error("sign-up: provisioning refused", extra={"slug": slug, "error": report.error})
            raise ServiceUnavailable(UNAVAILABLE)
    if chosen_slug:
        raise _slug_conflict(chosen_slug)
    logger.error("sign-up: no free slug", extra={"name": name})
    raise ServiceUnavailable(UNAVAILABLE)


def _slug_conflict(slug: str) -> Conflict:
    return Conflict(f"body.slug: {slug!r} is taken: choose another (or leave it out to have one made)",
                    errors=[{"loc": ["body", "slug"], "msg": "is taken", "type": "slug_taken"}])


# ---------------------------------------------------------------- verification

def _mail_link(tenant_id: str, user_id: str, workspace_name: str) -> None:
    """Issue a verification link to the user and mail it (written to the notifications e-mail channel; when the
    queue refuses it, the notifications sweep queues it later)."""
    from funnel.notifications import service as notifications  # the notifications e-mail channel

    settings = get_settings()
    hours = settings.verify_email_ttl_seconds // 3600
    token = account_tokens.issue("verify_email", tenant_id, user_id, settings.verify_email_ttl_seconds)
    notifications.notify(
        tenant_id, recipient_user_ids=[user_id], category="account", channels=("EMAIL",),
        title=f"Verify your e-mail address for {workspace_name}",
        body=f"Open the link below to verify your e-mail address: until you do, {workspace_name} can be set up "
             f"but sends nothing (no forms, e-mails or publishing). The link works once, for {hours} hours. "
             "If you did not sign up for Funnel, ignore this mail.",
        action_url=account_tokens.link("verify_email", token), action_label="Verify e-mail address")


def verify_email(token: str) -> Row:
    """Spend the link (``account_tokens.redeem``: 401 when invalid, expired or used) and record the workspace as
    verified: ``id, slug, name, email_verified_at``."""
    redeemed = account_tokens.redeem(token, "verify_email")
    with db.control_transaction() as conn:
        row = store_tenants.mark_email_verified(conn, redeemed.tenant_id)
    if row is None:  # the workspace was deleted since the link was mailed: the same answer as any dead link
        raise Unauthorized(account_tokens.INVALID)
    directory.forget(redeemed.tenant_id)
    with db.tenant_transaction(redeemed.tenant_id) as conn:
        audit.record(conn, redeemed.user_id, "workspace.verify_email", "tenant", redeemed.tenant_id)
    return row


def resend_verification(principal: Principal) -> dict[str, Any]:
    """A new link mailed to the caller (an owner or an admin: the route checks), the older ones void; 409 once
    the workspace is verified, 429 past ``verify_email_resend_max`` in the window."""
    settings = get_settings()
    directory.forget(principal.tenant_id)  # the truth, not a cached entry, decides whether a mail goes out
    tenant = directory.get(principal.tenant_id)
    if tenant.email_verified:
        raise Conflict("this workspace's e-mail address is already verified")
    ratelimit.reserve({f"verify-email:resend:{principal.tenant_id}:{principal.user_id}":
                       settings.verify_email_resend_max}, settings.verify_email_resend_window_seconds,
                      "too many verification mails asked for; try again later")
    account_tokens.void("verify_email", principal.tenant_id, principal.user_id)
    try:
        _mail_link(principal.tenant_id, principal.user_id, tenant.name)
    except Exception as exc:
        logger.exception("the verification mail could not be written", extra={"tenant_id": principal.tenant_id})
        raise ServiceUnavailable("the verification mail could not be sent; try again in a minute") from exc
    with db.tenant_transaction(principal.tenant_id) as conn:
        audit.record(conn, principal, "workspace.verify_email_resend", "tenant", principal.tenant_id)
    return {"email": principal.email, "expires_in": settings.verify_email_ttl_seconds}
