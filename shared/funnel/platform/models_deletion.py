"""Request and response models of the workspace and its deletion (``routes_deletion``)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from funnel.api.contract import Out
from funnel.api.deps import StrictModel


class WorkspaceDeletion(Out):
    """A deletion the owner asked for: until `due_at` the workspace works as before and any owner may cancel it;
    then the hourly purge removes it."""

    requested_at: datetime
    due_at: datetime = Field(description="when the purge removes the workspace (within the hour after)")
    requested_by: UUID | None = Field(description="the owner who asked for it")


class Workspace(Out):
    id: str
    slug: str
    name: str
    isolation: Literal["silo", "pool"] = Field(description="silo: a database of its own; pool: a shared one")
    plan: str
    email_verified: bool = Field(description="whether the owner's e-mail address is verified (an unverified "
                                             "workspace sends nothing)")
    deletion: WorkspaceDeletion | None = Field(description="the scheduled deletion; null when none is")


class DeletionRequest(StrictModel):
    confirm: str = Field(min_length=1, max_length=63, description="the workspace's slug, typed by the owner to "
                                                                    "confirm")
    password: str | None = Field(default=None, min_length=1, max_length=1024,
                                 description="the owner's current password (needed when the owner has one)")
