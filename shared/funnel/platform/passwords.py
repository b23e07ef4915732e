"""Password hashing with argon2id (OWASP parameters: m=19 MiB, t=2, p=1)."""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    """argon2 is imported on first use: only logins, invitations and password changes hash."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when an account does not exist, so timing does not reveal which e-mails exist."""
    return _hasher().hash("funnel-dummy-password")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hasher = _hasher()
    from argon2.exceptions import InvalidHashError, VerificationError  # already loaded by _hasher()

    try:
        return hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
