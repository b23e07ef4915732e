"""Platform API: the workspace export (issue #18 item 5; ``funnel.platform.export``)."""
from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from funnel.api.contract import problems
from funnel.api.deps import Admin
from funnel.platform import export
from funnel.platform.models_export import WorkspaceExport

router = APIRouter()


@router.post("/export", status_code=202, tags=["export"], responses=problems(
    409, 503, conflict="an export of this workspace is running (`run_id` names it)",
    unavailable="the export could not be started (its run ended failed); try again in a moment"))
def start_export(principal: Admin) -> WorkspaceExport:
    """Export the workspace (owners and admins): a consistent snapshot of its data and an index of its S3
    objects in a tar.gz, made in the background. Follow it with GET /v1/export/{run_id}, which gives the
    download link once it is completed. One export at a time per workspace."""
    return WorkspaceExport.of(export.start_export(principal))


@router.get("/export/{run_id}", tags=["export"], responses=problems(
    404, not_found="no export with this id (another workspace's included)"))
def get_export(run_id: UUID, principal: Admin) -> WorkspaceExport:
    """The export's status and progress; once completed, a presigned link to the archive valid until
    `expires_at` (each call gives a new one)."""
    view = export.export_status(principal, str(run_id))
    return WorkspaceExport.of(view.run, view.download_url, view.expires_at)
