"""Platform API: the workspace's settings (``system_settings``; ``funnel.platform.workspace_settings``)."""
from __future__ import annotations

from fastapi import APIRouter

from funnel.api.contract import problems
from funnel.api.deps import Admin, CurrentPrincipal
from funnel.platform import workspace_settings
from funnel.platform.models_settings import SettingsPatch, WorkspaceSettings

router = APIRouter()


@router.get("/settings", tags=["settings"])
def get_settings(principal: CurrentPrincipal) -> WorkspaceSettings:
    """The workspace's settings; the SMTP password is never returned (`smtp.password_set` says whether one is
    stored)."""
    return WorkspaceSettings.model_validate(workspace_settings.current(principal))


@router.patch("/settings", tags=["settings"], responses=problems(
    422, validation="A field is not valid (`errors` names it: an unsafe URL or SMTP host, a bad send window, not a "
                    "host name, an unknown step or model); nothing is written"))
def update_settings(body: SettingsPatch, principal: Admin) -> WorkspaceSettings:
    """Change the fields sent (null clears one); admins only. Audited as `settings.update` with the names of the
    changed fields (never their values)."""
    return WorkspaceSettings.model_validate(workspace_settings.update(principal, body))
