"""Platform API: the workspace and its deletion (``funnel.platform.deletion``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from funnel.api.contract import problem_response, problems
from funnel.api.deps import CurrentPrincipal, require
from funnel.platform import deletion
from funnel.platform.models_deletion import DeletionRequest, Workspace
from funnel.platform.principal import Principal

router = APIRouter()
Owner = Annotated[Principal, require("owner")]

SCHEDULE_PROBLEMS = {
    **problems(403, 409, 429,
               forbidden="The caller is not an owner, or calls with an API key (only a signed-in owner deletes)",
               conflict="A deletion of the workspace is already scheduled (cancel it to schedule another)",
               rate_limited="Too many wrong passwords for this account or address (the sign-in limits); retry "
                            "after `Retry-After` seconds"),
    422: problem_response(422, "The request is not valid: `confirm` is not the workspace's slug, or `password` is "
                               "missing or not the owner's current password"),
}
SCHEDULE_PROBLEMS[429]["headers"] = {"Retry-After": {"description": "seconds until the window that refused the "
                                                                    "attempt ends", "schema": {"type": "integer"}}}


@router.get("/workspace", tags=["workspace"])
def get_workspace(principal: CurrentPrincipal) -> Workspace:
    """The caller's workspace, with its scheduled deletion (null when none is)."""
    return Workspace.model_validate(deletion.workspace(principal))


@router.post("/workspace/deletion", status_code=202, tags=["workspace"], responses=SCHEDULE_PROBLEMS)
def schedule_workspace_deletion(body: DeletionRequest, principal: Owner) -> Workspace:
    """Schedule the workspace's deletion (owners, signed in): `confirm` is its slug, `password` the owner's current
    one. After the grace period (`deletion.due_at`) its data, files, schedules, subscription and directory entry
    are removed for good; until then it works as before and any owner may cancel. Every owner is told."""
    return Workspace.model_validate(deletion.request_deletion(principal, body.confirm, body.password))


@router.delete("/workspace/deletion", tags=["workspace"], responses=problems(
    403, 404, forbidden="The caller is not an owner, or calls with an API key",
    not_found="No deletion of the workspace is scheduled"))
def cancel_workspace_deletion(principal: Owner) -> Workspace:
    """Cancel the workspace's scheduled deletion (owners, signed in); every owner is told."""
    return Workspace.model_validate(deletion.cancel_deletion(principal))
