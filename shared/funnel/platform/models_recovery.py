"""Request and response models of password reset and change (``routes_recovery``)."""
from __future__ import annotations

from pydantic import Field

from funnel.api.contract import Out
from funnel.api.deps import StrictModel

NEW_PASSWORD = Field(min_length=10, max_length=1024, description="at least 10 characters, not the account's e-mail")


class PasswordResetRequest(StrictModel):
    # Any string, as at sign-in: an account's address is whatever it was created with.
    email: str = Field(min_length=3, max_length=320)


class PasswordResetConfirm(StrictModel):
    token: str = Field(min_length=1, max_length=4096, description="the `token` of the link in the reset mail")
    new_password: str = NEW_PASSWORD


class PasswordChange(StrictModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = NEW_PASSWORD


class PasswordResetAccepted(Out):
    detail: str = Field(description="the same whether or not the address has an account")
