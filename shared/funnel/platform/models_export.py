"""Platform API models: the workspace export (``POST /v1/export``, ``GET /v1/export/{run_id}``)."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from funnel.api.contract import Out
from funnel.platform.models import RunStatus


class ExportProgress(Out):
    tables_done: int
    tables_total: int | None = Field(description="null until the snapshot has listed the tables")
    rows: int = Field(description="rows written to the archive so far")
    steps_done: int
    steps_total: int = Field(description="each table, then the index of the S3 objects, then the upload")
    percent: float | None = Field(description="0-100, one decimal; null until the tables are known")


class ExportArchive(Out):
    key: str = Field(description="the archive's S3 key, `exports/{tenant_id}/{run_id}.tar.gz`")
    bytes: int
    sha256: str = Field(description="of the whole .tar.gz")
    revisions: list[str] = Field(description="the alembic revisions of the exported database")
    tables: int
    rows: int
    objects: int = Field(description="S3 objects indexed (keys, sizes, ETags; the objects stay in S3)")
    objects_bytes: int


class WorkspaceExport(Out):
    """A workspace export: its run's status and progress, and once completed a presigned, expiring link to
    the archive (a new one on every GET)."""

    run_id: UUID = Field(description="the run (also GET /v1/runs/{run_id})")
    status: RunStatus
    current_step: str | None = Field(description="`table <name>`, `objects` or `upload` while it runs")
    progress: ExportProgress
    archive: ExportArchive | None = Field(description="once completed")
    error_message: str | None = Field(description="why it failed")
    created_by: UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    download_url: str | None = Field(
        description="a presigned S3 GET of the archive, valid until `expires_at`; null until completed and once "
                    "the archive is past its retention")
    expires_at: datetime | None

    @classmethod
    def of(cls, run: dict[str, Any], download_url: str | None = None,
           expires_at: datetime | None = None) -> WorkspaceExport:
        state = run["config"] or {}
        total = run["steps_total"] or 0
        return cls.model_validate({
            "run_id": run["id"], "status": run["status"], "current_step": run["current_step"],
            "progress": {"tables_done": state.get("tables_done", 0), "tables_total": state.get("tables_total"),
                         "rows": state.get("rows", 0), "steps_done": run["steps_done"], "steps_total": total,
                         "percent": round(100 * run["steps_done"] / total, 1) if total else None},
            "archive": state.get("archive"), "error_message": run["error_message"],
            "created_by": run["created_by"], "created_at": run["created_at"], "started_at": run["started_at"],
            "finished_at": run["finished_at"], "download_url": download_url, "expires_at": expires_at})
