"""Community API: activities (one, batches, the list) and their CSV imports (included by funnel.community.routes)."""
from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime

from funnel import db
from funnel.api.contract import Page, problems
from funnel.api.deps import CurrentPrincipal, Cursor, Limit, Writer, page_body
from funnel.community import activities, imports
from funnel.community.models_activities import (
    Activity,
    ActivityBatchBody,
    ActivityBody,
    ActivityImport,
    ActivityImportFromUpload,
    ActivityIngested,
    ActivityUpload,
    ActivityUploadBody,
    IngestOutcome,
)

router = APIRouter()
REFERENCES = ("an item names an account, developer or resource the tenant does not have, or is not valid: "
              "`errors[].loc` is `body.items[i].field` (`body.field` for one activity); nothing is written")


@router.post("/activities", status_code=201, tags=["community"], responses={
    200: {"model": ActivityIngested, "description": "a duplicate (its dedup_key was seen: the first activity) or "
                                                    "skipped for consent (activity null)"},
    **problems(422, validation=REFERENCES)})
def ingest_activity(body: ActivityBody, principal: Writer, response: Response) -> ActivityIngested:
    """Record one activity. An unknown `account` is created and its developer resolved. A tracking-derived
    activity (clicks, views, opens, visits, scans, impressions, page views; sources ga, posthog, web_analytics,
    analytics, pixel, shortlink, tracking) of a developer without analytics consent is not stored."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        result = activities.ingest_one(conn, principal, body.model_dump())
    if result["status"] != "inserted":
        response.status_code = 200
    return ActivityIngested.model_validate(result)


@router.post("/activities/batch", tags=["community"], responses=problems(422, validation=REFERENCES))
def ingest_batch(body: ActivityBatchBody, principal: Writer) -> IngestOutcome:
    """Record up to 10,000 activities at once, all or nothing: each item is inserted, a duplicate (a dedup_key
    seen before, or earlier in the batch) or skipped for consent; `items[i].activity_id` is each one's id.
    Accounts are resolved in one pass for the whole batch."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return IngestOutcome.model_validate(
            activities.ingest(conn, principal, [i.model_dump() for i in body.items], loc=["body", "items"]))


@router.get("/activities", tags=["community"])
def list_activities(principal: CurrentPrincipal, developer_id: UUID | None = None, account_id: UUID | None = None,
                    action: Annotated[str | None, Query(max_length=100)] = None,
                    source: Annotated[str | None, Query(max_length=100)] = None, resource_id: UUID | None = None,
                    occurred_from: AwareDatetime | None = None, occurred_to: AwareDatetime | None = None,
                    limit: Limit = 50, cursor: Cursor = None) -> Page[Activity]:
    """Activities newest first (by occurred_at), filtered by any of developer, account, action, source, resource
    and a time range (`occurred_from` inclusive, `occurred_to` exclusive)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Page[Activity].model_validate(page_body(activities.list_activities(
            conn, developer_id=developer_id, account_id=account_id, action=action, source=source,
            resource_id=resource_id, occurred_from=occurred_from, occurred_to=occurred_to, cursor=cursor,
            limit=limit)))


@router.get("/activities/{activity_id}", tags=["community"], responses=problems(404))
def get_activity(activity_id: UUID, principal: CurrentPrincipal) -> Activity:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Activity.model_validate(activities.get_activity(conn, activity_id))


CSV_COLUMNS = (
    "A CSV file with a header row (UTF-8 with or without a BOM, or Shift_JIS/CP932), as the body (text/csv) or the "
    "`file` part of a multipart/form-data form. Columns (header names, any case): `occurred_at` (ISO 8601; "
    "without an offset the `timezone` parameter's time), `action` (required); who: `provider` and "
    "`external_user_id` (the account, created and resolved when unknown; with `handle`, `email`, `display_name`, "
    "`org`, `profile_url`) or `anon_id`; optional `source` (default csv), `source_ref`, `dedup_key`, "
    "`resource_category` and `resource_external_id` (with `resource_title`, `resource_url`, `resource_group_key`), "
    "`metadata` (a JSON object). Any other column becomes a metadata key. A row without dedup_key is keyed "
    "`source:source_ref`, else by its content, so importing a file again inserts nothing twice.")


@router.post("/activity-imports", status_code=202, tags=["community"], responses=problems(422, 503),
             openapi_extra={"requestBody": {"required": True, "description": CSV_COLUMNS, "content": {
                 "text/csv": {"schema": {"type": "string"}},
                 "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                     "file": {"type": "string", "format": "binary"}}}}}}})
async def import_activities(request: Request, principal: Writer,
                            timezone: Annotated[str, Query(min_length=1, max_length=64)] = "UTC") -> ActivityImport:
    """Import activities from a CSV file in the background: the file is checked (encoding, header: a 422 names
    what is missing), stored and queued; follow the job's progress and failed rows with
    GET /v1/activity-imports/{job_id}. The job ends completed, partial (some rows failed, each named with its row
    number and reason) or failed (with the error)."""
    body, content_type = await request.body(), request.headers.get("content-type", "")
    return ActivityImport.model_validate(imports.create_import(principal, body, content_type, timezone))


@router.post("/activity-imports/uploads", status_code=201, tags=["community"], responses=problems(422))
def create_import_upload(body: ActivityUploadBody, principal: Writer) -> ActivityUpload:
    """An upload for a CSV file above the 4 MiB body limit of POST /v1/activity-imports (up to `max_bytes`):
    PUT the file to `url` with `headers` before `expires_at`, then create its import with
    POST /v1/activity-imports/from-upload."""
    return ActivityUpload.model_validate(imports.create_upload(principal, body.bytes))


@router.post("/activity-imports/from-upload", status_code=202, tags=["community"],
             responses=problems(404, 409, 422, 503, not_found="no upload with this id (another tenant's included)",
                                conflict="the upload was imported already, has no file yet, or expired",
                                validation="the file is larger than the upload's max_bytes (it is deleted), or its "
                                           "encoding or header cannot be imported"))
def import_from_upload(body: ActivityImportFromUpload, principal: Writer) -> ActivityImport:
    """Import an uploaded CSV file in the background, as POST /v1/activity-imports does with a file in the body
    (the same columns, encodings and checks)."""
    return ActivityImport.model_validate(imports.import_upload(principal, body.upload_id, body.timezone))


@router.post("/activity-imports/{job_id}/retry", status_code=202, tags=["community"],
             responses=problems(404, 409, 503, conflict="the import has not failed"))
def retry_import(job_id: UUID, principal: Writer) -> ActivityImport:
    """Queue a failed import again: it continues after the rows it had processed (rows already imported are
    never imported twice). A job that stalled (no progress through every retry of its queue) fails with an error
    saying so, and is retried this way."""
    return ActivityImport.model_validate(imports.retry_job(principal, job_id))


@router.get("/activity-imports", tags=["community"])
def list_imports(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None) -> Page[ActivityImport]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Page[ActivityImport].model_validate(page_body(imports.list_jobs(conn, cursor, limit)))


@router.get("/activity-imports/{job_id}", tags=["community"], responses=problems(404))
def get_import(job_id: UUID, principal: CurrentPrincipal) -> ActivityImport:
    """An import's status, progress and metrics (processed, inserted, duplicates, skipped for consent, failed rows
    with their row numbers and reasons)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return ActivityImport.model_validate(imports.job_view(imports.get_job(conn, job_id)))
