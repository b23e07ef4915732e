"""Sign-up in tests through the local gateway, where every request comes from 127.0.0.1: the sign-ups of a whole
session (schemathesis', the README's, the sign-up tests') share that address's window of ``signup_max_per_ip``,
kept in the control DB. A test that must be let through clears it first."""
from __future__ import annotations

from funnel import db

GATEWAY_ADDRESS = "127.0.0.1"


def clear_sign_up_window(address: str = GATEWAY_ADDRESS) -> None:
    """Forget the sign-ups counted against ``address`` (``funnel.platform.signup``'s ``signup:ip:`` key)."""
    with db.control_admin_connect() as conn:
        conn.execute("DELETE FROM rate_limit_windows WHERE key = %s", (f"signup:ip:{address}",))
