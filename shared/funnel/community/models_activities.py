"""Community API models: activities (one, a batch, the list), activity CSV import jobs and their presigned uploads."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from funnel.api.contract import FreeJsonObject, Out
from funnel.api.deps import StrictModel
from funnel.community.imports import MAX_UPLOAD_BYTES

MAX_BATCH = 10_000
IngestStatus = Literal["inserted", "duplicate", "skipped_consent"]
JobStatus = Literal["queued", "running", "completed", "partial", "failed"]


class ActivityAccount(StrictModel):
    """The account that did it, as its source knows it: created (and its developer resolved) when unknown."""
    provider: str = Field(min_length=1, max_length=50, examples=["github"])
    external_user_id: str = Field(min_length=1, max_length=300, description="the provider's own id of the user")
    handle: str | None = Field(default=None, max_length=300)
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=300)
    org: str | None = Field(default=None, max_length=300)
    profile_url: str | None = Field(default=None, max_length=2000)
    avatar_url: str | None = Field(default=None, max_length=2000)
    attributes: dict[str, Any] | None = None


class ActivityResource(StrictModel):
    """What it was done to, found or created by (category, external_id)."""
    category: str = Field(min_length=1, max_length=100, examples=["repo", "blog", "event"])
    external_id: str = Field(min_length=1, max_length=500)
    title: str | None = Field(default=None, max_length=1000)
    url: str | None = Field(default=None, max_length=2000)
    group_key: str | None = Field(default=None, max_length=300)


class ActivityBody(StrictModel):
    """One event. Who: exactly one of ``account``, ``account_id`` or ``developer_id``, or only ``anon_id`` (an
    anonymous click id, QR scan...; it may accompany the others too)."""
    account: ActivityAccount | None = None
    account_id: UUID | None = None
    developer_id: UUID | None = None
    anon_id: str | None = Field(default=None, min_length=1, max_length=300)
    resource_id: UUID | None = None
    resource: ActivityResource | None = None
    action: str = Field(min_length=1, max_length=100, examples=["star"])
    source: str = Field(default="api", min_length=1, max_length=100, examples=["github"])
    source_ref: str | None = Field(default=None, min_length=1, max_length=500,
                                   description="the source's own id of the event (a GitHub delivery id...)")
    occurred_at: AwareDatetime
    metadata: dict[str, Any] | None = None
    dedup_key: str | None = Field(default=None, min_length=1, max_length=500,
                                  description="idempotency of the event: a key seen before is a duplicate; "
                                              "without one, `source:source_ref` when source_ref is given")


class ActivityBatchBody(StrictModel):
    items: list[ActivityBody] = Field(min_length=1, max_length=MAX_BATCH)


class Activity(Out):
    activity_id: UUID
    developer_id: UUID | None
    account_id: UUID | None
    anon_id: str | None
    resource_id: UUID | None
    action: str
    occurred_at: datetime
    recorded_at: datetime
    source: str
    source_ref: str | None
    category: str | None
    group_key: str | None
    metadata: FreeJsonObject | None
    confidence: float
    dedup_key: str | None
    ingested_at: datetime


class IngestedItem(Out):
    index: int = Field(description="the item's position in the batch")
    status: IngestStatus = Field(description="inserted; duplicate (its dedup_key was seen before: activity_id is "
                                             "the first one's); skipped_consent (a tracking-derived event of a "
                                             "developer without analytics consent: not stored)")
    activity_id: UUID | None


class IngestOutcome(Out):
    inserted: int
    duplicates: int
    skipped_consent: int
    items: list[IngestedItem]


class ActivityIngested(Out):
    status: IngestStatus
    activity: Activity | None = Field(description="the stored activity (the earlier one for a duplicate); null "
                                                  "when skipped for consent")


class FailedRow(Out):
    row: int = Field(description="the row's number in the file (the header is row 1)")
    reason: str


class ImportMetrics(Out):
    processed: int = Field(description="data rows read so far")
    inserted: int
    duplicates: int
    skipped_consent: int
    failed: int
    failed_rows: list[FailedRow] = Field(description="the first failed rows with their reasons (at most 1000)")
    progress: float = Field(description="percent of the file read")


class ActivityImport(Out):
    job_id: UUID
    source: str
    status: JobStatus
    encoding: str | None
    metrics: ImportMetrics
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    created_by: UUID | None


class ActivityUploadBody(StrictModel):
    """A presigned upload for a CSV above the API's body limit: PUT the file to the answer's ``url`` with its
    ``headers``, then create the import from ``upload_id`` (POST /v1/activity-imports/from-upload)."""
    bytes: int = Field(ge=1, le=MAX_UPLOAD_BYTES, description="the file's size in bytes (at most max_bytes)")


class ActivityUpload(Out):
    upload_id: UUID
    url: str = Field(description="where to PUT the file (presigned S3 URL) before expires_at")
    method: Literal["PUT"]
    headers: dict[str, str] = Field(description="the headers the PUT must send (they are signed)")
    expires_at: datetime = Field(description="when the URL stops accepting the file")
    import_before: datetime = Field(description="when the upload id stops creating an import (then it is deleted)")
    max_bytes: int = Field(description="the largest file an upload may hold; a larger one is refused with 422 "
                                       "when the import is created")


class ActivityImportFromUpload(StrictModel):
    upload_id: UUID
    timezone: str = Field(default="UTC", min_length=1, max_length=64,
                          description="the time zone of times without an offset (IANA, e.g. Asia/Tokyo)")
