"""Password reset (by an e-mailed single-use link) and password change (by the signed-in user).

- **Reset request** (public): the same 202 whatever the address. Each workspace user of the e-mail (the login
  directory; disabled users and pending invitations are skipped) gets a mail with their own link
  (``account_tokens``, purpose ``password_reset``, 15 minutes), which voids their older reset links. Requests
  are counted per client address and per e-mail address before anything is looked up, so a 429 says nothing
  about the address; and every answer waits until ``password_reset_answer_seconds`` after the request arrived,
  so mailing (a few database writes and a queue message) takes no visible time the unknown address does not.
- **Reset confirm** (public): the link is spent once; the new password is set, every session of the user ends
  (a reset means the old password, or a session, may be someone else's) and every other reset link is void.
- **Change** (a signed-in session, never an API key): the current password is verified, counted by the sign-in
  limiter (a stolen access token cannot guess it faster than a sign-in could); the user's other sessions end,
  the one that changed it goes on.

Both end with a mail to the user saying their password changed. Mails go through the notifications e-mail
channel; the reset mail's category is ``account``, which the notifications API never shows to anyone else
(``funnel.notifications.service.SECRET_CATEGORIES``).
"""
from __future__ import annotations

import time

from funnel import db
from funnel.db import Row
from funnel.notifications import service as notifications
from funnel.observability import logger
from funnel.platform import account_tokens, audit, auth, ratelimit, store_sessions, store_tenants, store_users, tokens
from funnel.platform.errors import Forbidden, Unauthorized
from funnel.platform.passwords import hash_password
from funnel.platform.principal import Principal
from funnel.platform.users import check_new_password, login_password_hash
from funnel.settings import get_settings

RESET_TTL_SECONDS = 15 * 60
RESET_ANSWER = ("if an account uses this address, a link to reset its password is on its way; it works once, "
                "within 15 minutes")
RESET_CATEGORY = "account"  # carries a live link: hidden from everyone but its recipient
CHANGED_CATEGORY = "account.password_changed"  # no secret in it
# The sessions a new password ends are logged out everywhere (the reasons control's CHECK allows, c0003).
SESSIONS_ENDED = "logout_everywhere"


def request_reset(email: str, ip: str | None) -> None:
    """Mail a reset link to every workspace user of ``email``; the same (silent) outcome when there is none."""
    settings = get_settings()
    started = time.monotonic()
    address = email.strip().lower()
    ratelimit.reserve({f"password_reset:address:{address}": settings.password_reset_max_per_address,
                       f"password_reset:ip:{ip or 'unknown'}": settings.password_reset_max_per_ip},
                      settings.password_reset_window_seconds, "too many password reset requests; try again later")
    with db.control_transaction() as conn:
        entries = store_tenants.login_entries(conn, email.strip())
    for entry in entries:
        try:
            _mail_reset_link(entry)
        except Exception:  # an error answer only for addresses that exist would tell which ones do
            logger.exception("a password reset link could not be sent", extra={"tenant_id": entry["tenant_id"]})
    # The answer's time says nothing about whether mails were sent (the floor is above the mailing's cost).
    time.sleep(max(0.0, settings.password_reset_answer_seconds - (time.monotonic() - started)))


def _mail_reset_link(entry: Row) -> None:
    tenant_id, user_id = entry["tenant_id"], str(entry["user_id"])
    user = login_password_hash(tenant_id, user_id)
    if user is None or user["disabled"] or user["password_hash"] is None:
        return  # a disabled user cannot sign in anyway; an invited one sets a password with the invitation
    account_tokens.void("password_reset", tenant_id, user_id)  # only the newest link works
    token = account_tokens.issue("password_reset", tenant_id, user_id, RESET_TTL_SECONDS)
    notifications.notify(
        tenant_id, recipient_user_ids=[user_id], category=RESET_CATEGORY, channels=("EMAIL",), priority="HIGH",
        title="Reset your Funnel password",
        body=(f"Someone asked to reset the password of {user['email']} in the Funnel workspace {entry['slug']}. "
              f"The link below works once, within 15 minutes. If it was not you, ignore this mail: your password "
              f"stays as it is."),
        action_url=account_tokens.link("password_reset", token), action_label="Choose a new password")


def confirm_reset(token: str, new_password: str) -> None:
    """Spend the reset link and set ``new_password``; every session of the user ends. A bad link is the one 401
    of ``account_tokens`` (invalid, expired or used); a password against the rules is a 422 naming
    ``new_password`` and leaves the link unspent."""
    try:
        claims = tokens.verify(token, "password_reset")
    except Unauthorized as exc:
        raise Unauthorized(account_tokens.INVALID) from exc
    tenant_id, user_id = claims.get("tid"), claims.get("sub")
    if not (isinstance(tenant_id, str) and isinstance(user_id, str)):
        raise Unauthorized(account_tokens.INVALID)
    user = login_password_hash(tenant_id, user_id)
    if user is None or user["disabled"]:
        raise Unauthorized(account_tokens.INVALID)
    # Checked before the link is spent: a password refused by the rules leaves the link for another try.
    check_new_password(new_password, user["email"], ["body", "new_password"])
    redeemed = account_tokens.redeem(token, "password_reset")
    password_hash = hash_password(new_password)
    with db.tenant_transaction(redeemed.tenant_id) as conn:
        if store_users.set_password(conn, redeemed.user_id, password_hash) is None:
            raise Unauthorized(account_tokens.INVALID)
        audit.record(conn, redeemed.user_id, "user.password_reset", "user", redeemed.user_id)
        # Inside the tenant transaction: if the sessions cannot be ended, the password is not changed either.
        with db.control_transaction() as control:
            store_sessions.revoke_user_families(control, redeemed.tenant_id, redeemed.user_id, SESSIONS_ENDED)
    account_tokens.void("password_reset", redeemed.tenant_id, redeemed.user_id)
    _mail_password_changed(redeemed.tenant_id, redeemed.user_id, "with a reset link; every session was signed out")


def change_password(principal: Principal, current_password: str, new_password: str) -> None:
    """The signed-in user's new password. ``current_password`` must be right (else a 422 naming it), and every
    attempt counts against the sign-in limits of the account and the address, a right one taken back. The
    user's other sessions end; this one goes on."""
    if principal.api_key_id is not None or principal.session_id is None:
        raise Forbidden("a password is changed from a signed-in session, not with an API key")
    user = login_password_hash(principal.tenant_id, principal.user_id)
    auth.check_current_password(principal, user["password_hash"] if user else None, current_password,
                                "current_password", "this is not your current password")
    assert user is not None  # no password hash is never right
    check_new_password(new_password, user["email"], ["body", "new_password"])
    password_hash = hash_password(new_password)
    with db.tenant_transaction(principal.tenant_id) as conn:
        if store_users.set_password(conn, principal.user_id, password_hash) is None:
            raise Unauthorized("user not found or disabled")
        audit.record(conn, principal, "user.password_change", "user", principal.user_id)
        with db.control_transaction() as control:
            store_sessions.revoke_other_families(control, principal.tenant_id, principal.user_id,
                                                 principal.session_id, SESSIONS_ENDED)
    account_tokens.void("password_reset", principal.tenant_id, principal.user_id)
    _mail_password_changed(principal.tenant_id, principal.user_id, "from a signed-in session; your other "
                                                                   "sessions were signed out")


def _mail_password_changed(tenant_id: str, user_id: str, how: str) -> None:
    notifications.notify(
        tenant_id, recipient_user_ids=[user_id], category=CHANGED_CATEGORY, channels=("EMAIL",), priority="HIGH",
        title="Your Funnel password was changed",
        body=(f"The password of your Funnel account was changed {how}. If it was not you, reset your password "
              f"now (\"Forgot password\" on the sign-in page) and tell your workspace's admin."))
