"""Who is calling: established once per request (API auth) and carried everywhere."""
from __future__ import annotations

from dataclasses import dataclass

ROLE_RANK = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}
SCOPE_ROLE_CAP = {"read": "viewer", "write": "member", "admin": "admin"}


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    user_id: str
    role: str
    email: str = ""
    api_key_id: str | None = None
    ip: str | None = None
    # The sign-in session (refresh-token family) a bearer token belongs to; None for API keys. A password
    # change ends the user's other sessions and keeps this one.
    session_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"apikey:{self.api_key_id}" if self.api_key_id else self.user_id

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[minimum]


def capped_role(user_role: str, scope: str) -> str:
    """An API key acts as its creator, never above what its scope allows."""
    cap = SCOPE_ROLE_CAP[scope]
    return user_role if ROLE_RANK[user_role] <= ROLE_RANK[cap] else cap
