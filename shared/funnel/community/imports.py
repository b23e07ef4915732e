"""CSV import of activities as an ``activity_import_jobs`` run: the upload (checked, stored in S3, queued; or a
presigned S3 upload for files above the API's body limit, then a job made from it), the background processing
(``run_import``, called by CommunityActivityImportFunction), retries of failed jobs and the hourly sweep that
fails stalled ones.

The processing reads the file in chunks of ``CHUNK_ROWS`` data rows, parsed by a reading thread one chunk ahead of
the database. Each chunk is one transaction: its accounts that this run has not met yet are resolved with ONE
``identity.resolve_accounts`` call, its resources upserted in one statement, the dedup keys the tenant has looked
up in one, its new rows COPYed into a staging table and moved into ``activities`` by one ``INSERT ... SELECT``,
and the job's metrics (the position reached, counts, failed rows) written with them. A retried message therefore
resumes after the last committed chunk, and every row has a deterministic dedup key (``row_dedup_key``), so nothing
is inserted twice.

Row rules, the columns, the encodings, uploads and stalled jobs: shared/funnel/community/README-activities.md.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import queue
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from uuid import UUID

import psycopg

from funnel import db
from funnel.community import activities, identity, store_activities
from funnel.community import store_imports as store
from funnel.db import Connection, Row
from funnel.observability import count, logger
from funnel.platform import audit, aws, storage
from funnel.platform.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.settings import get_settings

CHUNK_ROWS = 20_000
# Presigned uploads (files above the API's body limit): the most an upload may hold (the run reads the file into
# memory: CommunityActivityImportFunction has 2048 MB), how long its PUT URL lives, how long after that a job
# may still be created from it (then the sweep deletes it), and how much of it the job's creation reads to check
# the encoding and header.
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
UPLOAD_URL_SECONDS = 900
UPLOAD_IMPORT_WITHIN_SECONDS = 86_400
HEADER_PROBE_BYTES = 256 * 1024
# A queued or running job with no progress for this long has no delivery of its message left: it is
# CommunityActivityImportQueue's VisibilityTimeout (5400 s) times its maxReceiveCount (3) in template.yaml (a
# unit test compares them), the longest the queue keeps retrying a message before the dead-letter queue takes it.
STALLED_AFTER_SECONDS = 5400 * 3
STALLED_ERROR = ("the import stopped: it made no progress through every attempt the queue makes (the worker "
                 "crashed or ran out of time each time). The rows counted as processed were imported; retry the "
                 "import to continue after them")
MAX_CELL_CHARS = 10_000  # a metadata object may use them; no other column needs as many
MAX_FAILED_ROWS_KEPT = 1000
DEFAULT_SOURCE = "csv"

# canonical column -> the header names accepted for it (compared case- and space-insensitively)
COLUMNS: dict[str, tuple[str, ...]] = {
    "occurred_at": ("occurred_at", "timestamp", "time", "date", "datetime", "日時"),
    "action": ("action", "アクション"),
    "source": ("source", "ソース"),
    "source_ref": ("source_ref",),
    "dedup_key": ("dedup_key",),
    "provider": ("provider", "プロバイダ"),
    "external_user_id": ("external_user_id", "user_id"),
    "handle": ("handle", "username", "login"),
    "email": ("email", "e-mail", "メールアドレス"),
    "display_name": ("display_name", "name", "名前", "氏名"),
    "org": ("org", "organization", "company", "会社名", "所属"),
    "profile_url": ("profile_url",),
    "anon_id": ("anon_id",),
    "resource_category": ("resource_category",),
    "resource_external_id": ("resource_external_id",),
    "resource_title": ("resource_title",),
    "resource_url": ("resource_url",),
    "resource_group_key": ("resource_group_key", "group_key"),
    "metadata": ("metadata",),
}
_BY_HEADER = {name: column for column, names in COLUMNS.items() for name in names}
FIELD_LIMITS = {"action": 100, "source": 100, "source_ref": 500, "dedup_key": 500, "provider": 50,
                "external_user_id": 300, "anon_id": 300, "resource_category": 100, "resource_external_id": 500}
_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,49}$")
_JSON = json.JSONEncoder(ensure_ascii=False)  # one encoder for every row (json.dumps builds one per call)
_ABSENT = 1 << 30  # the position of a column the header lacks: beyond every row
# FIELD_LIMITS as (position in COLUMNS, column, limit)
_LIMITS = tuple((tuple(COLUMNS).index(column), column, limit) for column, limit in FIELD_LIMITS.items())


# ---------------------------------------------------------------- encoding and header

def decode(data: bytes) -> tuple[str, str]:
    """(encoding, text): UTF-8 (with or without a BOM) or Shift_JIS/CP932, as Excel writes CSV; anything else is
    refused, never guessed."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return "utf-8-sig", data[3:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed(f"the file starts with a UTF-8 BOM but is not UTF-8 (byte {exc.start + 3})") \
                from exc
    try:
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp932")
    except UnicodeDecodeError:
        text = None
    # CP932 maps a few stray bytes to private-use or C1 control characters: no Excel file contains them.
    if text is not None and not any("\ue000" <= ch <= "\uf8ff" or "\x80" <= ch <= "\x9f" for ch in text):
        return "cp932", text
    raise ValidationFailed("the file is neither UTF-8 nor Shift_JIS (CP932): save it again as CSV UTF-8")


@dataclass(frozen=True)
class Header:
    names: tuple[str, ...]           # as written, for failure reasons
    index: dict[str, int]            # canonical column -> position
    extra: tuple[tuple[int, str], ...]  # other columns: (position, name) -> metadata keys

    @property
    def slots(self) -> tuple[int, ...]:
        """The position of each of ``COLUMNS`` in its order (``_ABSENT`` for a column the file lacks), so that a
        row's values are read with one comprehension rather than one lookup per column."""
        return tuple(self.index.get(column, _ABSENT) for column in COLUMNS)


def read_header(cells: Sequence[str]) -> Header:
    index: dict[str, int] = {}
    extra: list[tuple[int, str]] = []
    for position, raw in enumerate(cells):
        name = raw.strip()
        column = _BY_HEADER.get(name.casefold().replace(" ", "_"))
        if column and column not in index:
            index[column] = position
        elif name:
            extra.append((position, name))
    missing = [c for c in ("occurred_at", "action") if c not in index]
    if not ({"provider", "external_user_id"} <= index.keys() or "anon_id" in index):
        missing.append("provider and external_user_id (or anon_id)")
    if missing:
        raise ValidationFailed(f"the CSV header has no {', '.join(missing)} column",
                               columns=[c.strip() for c in cells],
                               errors=[{"loc": ["body", "header"], "msg": f"missing column: {m}", "type": "csv"}
                                       for m in missing])
    return Header(tuple(c.strip() for c in cells), index, tuple(extra))


# ---------------------------------------------------------------- one row

@dataclass(slots=True)
class ParsedRow:
    row: int
    occurred_at: datetime
    action: str
    source: str
    source_ref: str | None
    dedup_key: str
    account: tuple[str, str] | None     # (provider, external_user_id)
    profile: dict[str, str | None] | None
    anon_id: str | None
    resource: tuple[str, str] | None    # (category, external_id)
    resource_fields: dict[str, str | None] | None
    metadata: str | None                # JSON text of an object
    # the row's own staged columns (STAGED_COLUMNS from anon_id on) in COPY text, made in the reading thread
    copy_text: str = ""


class RowRejected(Exception):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number beyond a double")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_time(text: str, zone: tzinfo) -> datetime:
    """ISO 8601 (``2026-01-31T09:00:00+09:00``, ``...Z``, a space for the T, ``/`` for ``-`` as Excel writes it); a
    time without an offset is in the import's time zone."""
    value = datetime.fromisoformat(text.replace("/", "-"))
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def row_dedup_key(source: str, occurred_at: datetime, action: str, who: str, resource: str, metadata: str) -> str:
    """The key of a row that names none (no dedup_key, no source_ref): the same event (who, what, on what, when,
    with what metadata) written twice, in one file or in two uploads, is one activity."""
    digest = hashlib.blake2b("\x1f".join((source, action, repr(occurred_at.timestamp()), who, resource,
                                          metadata)).encode(), digest_size=16).hexdigest()
    return f"csv:{digest}"


def parse_row(number: int, cells: list[str], header: Header, zone: tzinfo,
              slots: tuple[int, ...] | None = None) -> ParsedRow:
    """One data row (``number``: its row in the file, the header is row 1) or RowRejected with the reason.
    ``slots``: ``header.slots``, computed once per file by the caller that parses many rows."""
    names = header.names
    if len(cells) > len(names):
        raise RowRejected(f"has {len(cells)} cells, the header has {len(names)}")
    joined = "".join(cells)
    if "\x00" in joined or len(joined) > MAX_CELL_CHARS:  # else no cell can fail either check
        for position, cell in enumerate(cells):
            if "\x00" in cell:
                raise RowRejected(f"{names[position] or f'column {position + 1}'} contains a NUL character")
            if len(cell) > MAX_CELL_CHARS:
                raise RowRejected(f"{names[position] or f'column {position + 1}'} is longer than "
                                  f"{MAX_CELL_CHARS} characters")
    width = len(cells)
    values = [cells[p].strip() if p < width else "" for p in (slots or header.slots)]
    (when, action, source, source_ref, dedup_key, provider, external_id, handle, email, display_name, org,
     profile_url, anon_id, category, resource_id, resource_title, resource_url, group_key, metadata_text) = values
    if not action:
        raise RowRejected("action is missing")
    if not when:
        raise RowRejected("occurred_at is missing")
    try:
        occurred_at = parse_time(when, zone)
    except ValueError:
        raise RowRejected(f"occurred_at is not a date and time (ISO 8601, e.g. 2026-01-31T09:00:00+09:00): "
                          f"{when[:50]!r}") from None
    for position, column, limit in _LIMITS:
        if len(values[position]) > limit:
            raise RowRejected(f"{column} is longer than {limit} characters")
    source = source or DEFAULT_SOURCE
    account = profile = None
    if provider or external_id:
        if not (provider and external_id):
            raise RowRejected("an account needs both provider and external_user_id")
        provider = provider.casefold()
        if not _PROVIDER.match(provider):
            raise RowRejected("provider is 1-50 characters of a-z, 0-9, '_', '.', '-'")
        account = (provider, external_id)
        profile = {"handle": handle or None, "email": email or None, "display_name": display_name or None,
                   "org": org or None, "profile_url": profile_url or None}
    elif not anon_id:
        raise RowRejected("no account (provider and external_user_id) and no anon_id")
    resource = resource_fields = None
    if category or resource_id:
        if not (category and resource_id):
            raise RowRejected("a resource needs both resource_category and resource_external_id")
        resource = (category, resource_id)
        resource_fields = {"title": resource_title or None, "url": resource_url or None,
                           "group_key": group_key or None}
    metadata = _metadata(metadata_text or None, cells, header) if metadata_text or header.extra else None
    key = dedup_key or activities.derived_dedup_key(None, source, source_ref or None) or \
        row_dedup_key(source, occurred_at, action, "\x1e".join(account) if account else f"anon\x1e{anon_id}",
                      "\x1e".join(resource) if resource else "", metadata or "")
    anon, ref = anon_id or None, source_ref or None
    return ParsedRow(number, occurred_at, action, source, ref, key, account, profile, anon, resource,
                     resource_fields, metadata,
                     f"{_copy(anon)}\t{_copy(action)}\t{occurred_at.isoformat()}\t{_copy(source)}\t"
                     f"{_copy(ref)}\t{_copy(metadata)}\t{_copy(key)}\n")


def _metadata(text: str | None, cells: list[str], header: Header) -> str | None:
    """The metadata column (a JSON object) with the file's other columns added as keys."""
    found: dict[str, Any] = {}
    if text is not None:
        if "\\u0000" in text:
            raise RowRejected("metadata contains a NUL character")
        try:
            found = json.loads(text, parse_float=_finite, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise RowRejected("metadata is not JSON") from None
        if not isinstance(found, dict):
            raise RowRejected("metadata is not a JSON object")
    for position, name in header.extra:
        if position < len(cells) and cells[position].strip():
            found.setdefault(name, cells[position].strip())
    if not found:
        return None
    return text if text is not None and len(found) == 1 and not header.extra else _JSON.encode(found)


# ---------------------------------------------------------------- the upload

def _file_of(body: bytes, content_type: str) -> bytes:
    """The CSV bytes: the body itself, or the ``file`` part (else the first part) of a multipart/form-data body."""
    if not content_type.lower().startswith("multipart/form-data"):
        return body
    from email.parser import BytesParser  # noqa: PLC0415  (cold start: only multipart uploads parse MIME)
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") +
                                                  b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValidationFailed.at(["body"], "not a multipart/form-data body (no boundary)")
    parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition")]
    chosen = next((p for p in parts if p.get_param("name", header="content-disposition") == "file"),
                  parts[0] if parts else None)
    if chosen is None:
        raise ValidationFailed.at(["body", "file"], "the form has no file part")
    payload = chosen.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _zone(name: str, loc: tuple[str, str] = ("query", "timezone")) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415  (cold start: imports only)

    if name.upper() == "UTC":
        return UTC
    try:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", name):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):  # OSError: a folder of the database ("America")
        raise ValidationFailed.at(list(loc), "not an IANA time zone (e.g. Asia/Tokyo)") from None


def _checked_file(data: bytes, loc: list[str | int]) -> str:
    """The encoding of ``data`` (the file, or its first bytes up to a line end) once its header row has the columns
    an import needs; else a 422 (``errors[].loc`` ``[..., "header"]`` for the header)."""
    if not data.strip():
        raise ValidationFailed.at(loc, "the CSV is empty")
    encoding, text = decode(data)
    try:
        first = next(csv.reader(io.StringIO(text[:200_000])), None)
    except csv.Error as exc:
        raise ValidationFailed(f"the CSV header cannot be read: {exc}", errors=[
            {"loc": ["body", "header"], "msg": str(exc), "type": "csv"}]) from exc
    if not first:
        raise ValidationFailed.at(loc, "the CSV is empty")
    read_header(first)
    return encoding


def create_import(principal: Principal, body: bytes, content_type: str, timezone: str = "UTC") -> dict[str, Any]:
    """Check the file (an encoding this reads, a header with the needed columns: else a 422 and nothing kept),
    store it in S3, queue its job. Rows are checked by the background run, which reports each failed one."""
    _zone(timezone)
    data = _file_of(body, content_type)
    encoding = _checked_file(data, ["body"])
    with db.tenant_transaction(principal.tenant_id) as conn:
        job = store.insert_job(conn, principal.user_id, encoding, {"timezone": timezone, "bytes": len(data)})
        key = f"imports/{principal.tenant_id}/activities/{job['job_id']}.csv"
        storage.put_bytes(key, data, "text/csv")
        store.set_job_file(conn, job["job_id"], key)
        audit.record(conn, principal, "activity.import", "activity_import_job", job["job_id"],
                     {"bytes": len(data), "encoding": encoding})
    return _queue(principal, job, "nothing was imported: upload again")


def _queue(principal: Principal, job: Row, then: str) -> dict[str, Any]:
    """Send the job's message; a job whose message cannot be sent would wait forever, so it fails at once."""
    try:
        aws.client("sqs").send_message(QueueUrl=get_settings().activity_import_queue_url, MessageBody=json.dumps(
            {"tenant_id": principal.tenant_id, "job_id": str(job["job_id"])}))
    except Exception as exc:
        logger.exception("activity import could not be queued", extra={"job_id": str(job["job_id"])})
        with db.tenant_transaction(principal.tenant_id) as conn:
            store.finish_job(conn, job["job_id"], "failed", job["metrics"], "the import could not be queued")
        raise ServiceUnavailable(f"the import queue cannot be reached; {then}") from exc
    with db.tenant_transaction(principal.tenant_id) as conn:
        return job_view(get_job(conn, job["job_id"]))


# ---------------------------------------------------------------- large files: presigned uploads

def create_upload(principal: Principal, declared_bytes: int) -> dict[str, Any]:
    """A presigned S3 PUT URL for a CSV of ``declared_bytes`` (up to MAX_UPLOAD_BYTES), valid for
    UPLOAD_URL_SECONDS; the file is then imported with ``import_upload``."""
    if not 0 < declared_bytes <= MAX_UPLOAD_BYTES:
        raise ValidationFailed.at(["body", "bytes"], f"a file of 1 to {MAX_UPLOAD_BYTES} bytes")
    upload_id = uuid.uuid4()
    key = f"imports/{principal.tenant_id}/activities/uploads/{upload_id}.csv"
    with db.tenant_transaction(principal.tenant_id) as conn:
        row = store.insert_upload(conn, upload_id, key, declared_bytes, MAX_UPLOAD_BYTES, UPLOAD_URL_SECONDS,
                                  principal.user_id)
        audit.record(conn, principal, "activity.import.upload", "activity_import_upload", upload_id,
                     {"bytes": declared_bytes})
    url = storage.s3().generate_presigned_url(
        "put_object", ExpiresIn=UPLOAD_URL_SECONDS, HttpMethod="PUT",
        Params={"Bucket": get_settings().artifacts_bucket, "Key": key, "ContentType": "text/csv"})
    return {"upload_id": upload_id, "url": url, "method": "PUT", "headers": {"Content-Type": "text/csv"},
            "expires_at": row["expires_at"], "max_bytes": row["max_bytes"],
            "import_before": row["expires_at"] + timedelta(seconds=UPLOAD_IMPORT_WITHIN_SECONDS)}


def import_upload(principal: Principal, upload_id: UUID, timezone: str = "UTC") -> dict[str, Any]:
    """Create and queue the import job of an uploaded file: checked first like a direct upload (its size against
    the upload's maximum, its encoding and header from its first bytes). An upload another tenant made is not
    found; one imported already, not uploaded yet, or past its time is a 409."""
    _zone(timezone, ("body", "timezone"))
    with db.tenant_transaction(principal.tenant_id) as conn:
        upload = store.lock_upload(conn, upload_id, UPLOAD_IMPORT_WITHIN_SECONDS)
        if upload is None:
            raise NotFound("upload not found")
        if upload["job_id"] is not None:
            raise Conflict(f"this upload was imported already (import job {upload['job_id']})",
                           job_id=str(upload["job_id"]))
        if upload["expired"]:
            raise Conflict("this upload expired: request a new upload URL and upload the file again")
        size = _object_size(upload["file_path"])
        if size is None:
            raise Conflict("nothing was uploaded to this upload's URL yet: PUT the file first"
                           if not upload["url_expired"] else
                           "no file was uploaded before the upload URL expired: request a new upload URL")
        if size > upload["max_bytes"]:
            storage.s3().delete_object(Bucket=get_settings().artifacts_bucket, Key=upload["file_path"])
            raise ValidationFailed.at(["body", "upload_id"], f"the uploaded file has {size} bytes, more than the "
                                                             f"{upload['max_bytes']} an upload may have")
        encoding = _checked_file(_first_lines(upload["file_path"], size), ["body", "upload_id"])
        job = store.insert_job(conn, principal.user_id, encoding, {"timezone": timezone, "bytes": size})
        store.set_job_file(conn, job["job_id"], upload["file_path"])
        store.attach_upload(conn, upload_id, job["job_id"])
        audit.record(conn, principal, "activity.import", "activity_import_job", job["job_id"],
                     {"bytes": size, "encoding": encoding, "upload_id": str(upload_id)})
    return _queue(principal, job, "nothing was imported: create the import from the upload again")


def _object_size(key: str) -> int | None:
    s3 = storage.s3()
    try:
        return int(s3.head_object(Bucket=get_settings().artifacts_bucket, Key=key)["ContentLength"])
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _first_lines(key: str, size: int) -> bytes:
    """The file's first HEADER_PROBE_BYTES, cut after their last line end (no character is cut in two: a line
    feed byte is never part of a UTF-8 or CP932 character)."""
    if size <= HEADER_PROBE_BYTES:
        return storage.get_bytes(key)
    head = storage.s3().get_object(Bucket=get_settings().artifacts_bucket, Key=key,
                                   Range=f"bytes=0-{HEADER_PROBE_BYTES - 1}")["Body"].read()
    end = head.rfind(b"\n")
    return head[:end + 1] if end >= 0 else head


# ---------------------------------------------------------------- retries and stalled jobs

def retry_job(principal: Principal, job_id: UUID) -> dict[str, Any]:
    """Queue a failed job again. It resumes after the rows it had processed (every row's dedup key keeps a row
    from going in twice), so a job stopped by a crash or a database error continues where it stopped."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        job = store.lock_job(conn, job_id)
        if job is None:
            raise NotFound("import job not found")
        if job["status"] != "failed":
            raise Conflict(f"only a failed import can be retried: this one is {job['status']}")
        if job["file_path"] is None:
            raise Conflict("this import has no file to read: upload it again")
        store.requeue_job(conn, job_id)
        audit.record(conn, principal, "activity.import.retry", "activity_import_job", job_id,
                     {"processed": (job["metrics"] or {}).get("processed", 0), "error": job["error"]})
    return _queue(principal, job, "the import stays failed: retry it later")


def sweep(tenant_id: str, stalled_after_seconds: int = STALLED_AFTER_SECONDS) -> dict[str, int]:
    """Fail the tenant's jobs that made no progress for ``stalled_after_seconds`` (their message ended in the
    dead-letter queue, or was never sent), and forget the uploads never imported in time (their files too)."""
    with db.tenant_transaction(tenant_id) as conn:
        failed = store.fail_stalled_jobs(conn, stalled_after_seconds, STALLED_ERROR)
        for job in failed:
            audit.record(conn, "system:activity-import-sweep", "activity.import.stalled", "activity_import_job",
                         job["job_id"], {"status": job["status"], "processed": job["processed"]})
        forgotten = store.delete_expired_uploads(conn, UPLOAD_IMPORT_WITHIN_SECONDS)
    bucket = get_settings().artifacts_bucket
    for key in forgotten:
        storage.s3().delete_object(Bucket=bucket, Key=key)
    if failed:
        logger.warning("stalled activity imports failed", extra={"jobs": [str(j["job_id"]) for j in failed]})
    return {"failed_jobs": len(failed), "expired_uploads": len(forgotten)}


def get_job(conn: Connection, job_id: UUID | str) -> Row:
    row = store.job(conn, job_id)
    if row is None:
        raise NotFound("import job not found")
    return row


def list_jobs(conn: Connection, cursor: str | None, limit: int) -> Page:
    page = store.jobs_page(conn, cursor, limit)
    return Page(items=[job_view(r) for r in page.items], next_cursor=page.next_cursor)


def job_view(row: Row) -> dict[str, Any]:
    m = row["metrics"] or {}
    done = row["status"] in ("completed", "partial")
    metrics = {"processed": m.get("processed", 0), "inserted": m.get("inserted", 0),
               "duplicates": m.get("duplicates", 0), "skipped_consent": m.get("skipped_consent", 0),
               "failed": m.get("failed", 0), "failed_rows": m.get("failed_rows", []),
               "progress": 100.0 if done else m.get("progress", 0.0)}
    return {"job_id": row["job_id"], "source": row["source"], "status": row["status"], "encoding": row["encoding"],
            "metrics": metrics, "error": row["error"], "created_at": row["created_at"],
            "started_at": row["started_at"], "finished_at": row["finished_at"], "created_by": row["created_by"]}


# ---------------------------------------------------------------- the background run

class _Superseded(Exception):
    """Another delivery of the same message moved the job on: this one stops."""


@dataclass
class _Run:
    tenant_id: str
    job_id: str
    metrics: dict[str, Any]
    accounts: dict[tuple[str, str], tuple[UUID, UUID]]
    resources: dict[tuple[str, str], tuple[UUID, str, str | None]]
    size: int = 0  # characters in the file, for the progress
    # the staged columns of each account (developer_id, account_id) and resource (resource_id, category, group_key)
    # in COPY text, made once per run
    who: dict[tuple[str, str], str] = field(default_factory=dict)
    what: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass
class _Chunk:
    """Data rows read since the last chunk: those that parsed, the failed (and blank) ones, how many rows that is
    and how far into the file they end (characters), or the error that stopped reading the file after them."""
    rows: list[ParsedRow]
    failures: list[tuple[int, str]]
    rows_read: int
    read_to: int
    error: str | None = None


def _chunks(reader: Iterator[list[str]], header: Header, zone: tzinfo, done: int, chunk_rows: int,
            position: list[int], size: int) -> Iterator[_Chunk]:
    """The file's data rows after the first ``done`` (committed by an earlier attempt), ``chunk_rows`` at a time;
    ``position[0]``: the characters ``reader`` has read (``_lines``). Runs in the reading thread (``_ReadAhead``)
    while the database writes the chunk before."""
    slots = header.slots
    rows: list[ParsedRow] = []
    failures: list[tuple[int, str]] = []
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield _Chunk(rows, failures, len(rows) + len(failures), position[0],
                         f"the CSV cannot be read after row {number}: {exc}; the rows before it were imported")
            return
        number += 1
        if number - 1 <= done:
            continue
        if not cells or not any(c.strip() for c in cells):
            failures.append((number, ""))  # a blank line: read, neither imported nor failed
        else:
            try:
                rows.append(parse_row(number, cells, header, zone, slots))
            except RowRejected as exc:
                failures.append((number, str(exc)))
        if len(rows) + len(failures) >= chunk_rows:
            yield _Chunk(rows, failures, len(rows) + len(failures), position[0])
            rows, failures = [], []
    yield _Chunk(rows, failures, len(rows) + len(failures), size)


class _ReadAhead:
    """Iterate ``chunks`` in a thread of its own, at most ``depth`` chunks ahead: the next chunk is parsed while the
    database writes this one (psycopg releases the GIL while it waits), so the run takes about the longer of the
    two rather than their sum. An exception in the thread is raised where the chunk would have been."""

    _END = object()

    def __init__(self, chunks: Iterator[_Chunk], depth: int = 1) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(chunks,), name="activity-import-reader",
                                        daemon=True)
        self._thread.start()

    def _fill(self, chunks: Iterator[_Chunk]) -> None:
        try:
            for chunk in chunks:
                if not self._put(chunk):
                    return
        except BaseException as exc:  # noqa: BLE001  (handed to the consuming thread, raised there)
            self._put(exc)
            return
        self._put(self._END)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[_Chunk]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _lines(text: str, position: list[int]) -> Iterator[str]:
    """The text's lines, keeping in ``position[0]`` how many characters were read (the job's progress)."""
    read = 0
    for line in io.StringIO(text, newline=""):
        read += len(line)
        position[0] = read
        yield line


def run_import(tenant_id: str, job_id: str, chunk_rows: int = CHUNK_ROWS) -> dict[str, Any]:
    """Process a queued (or interrupted) job to its end; returns its final metrics and status."""
    with db.tenant_transaction(tenant_id) as conn:
        job = store.lock_job(conn, job_id)
        if job is None or job["status"] in ("completed", "partial", "failed"):
            return {"job_id": job_id, "status": job["status"] if job else "gone"}
        store.mark_running(conn, job_id)
    metrics = {"processed": 0, "inserted": 0, "duplicates": 0, "skipped_consent": 0, "failed": 0,
               "failed_rows": [], "progress": 0.0, **(job["metrics"] or {})}
    run = _Run(tenant_id, job_id, metrics, {}, {})
    try:
        encoding, text = decode(storage.get_bytes(job["file_path"]))
        zone = _zone(metrics.get("timezone", "UTC"))
    except ValidationFailed as exc:  # the file was checked at upload: only a changed object gets here
        return _finish(run, "failed", exc.detail)
    run.size = len(text)
    position = [0]
    reader = csv.reader(_lines(text, position))
    try:
        header = read_header(next(reader))
    except (StopIteration, csv.Error, ValidationFailed) as exc:
        return _finish(run, "failed", getattr(exc, "detail", None) or "the CSV header cannot be read")
    chunks = _chunks(reader, header, zone, metrics["processed"], chunk_rows, position, len(text))
    ahead = _ReadAhead(chunks)
    first = last = metrics["processed"] + 1  # the file rows of the chunk being written (the header is row 1)
    try:
        for chunk in ahead:
            first, last = metrics["processed"] + 2, metrics["processed"] + 1 + chunk.rows_read
            _write_chunk(run, chunk)
            if chunk.error:
                return _finish(run, "failed", chunk.error)
    except _Superseded:
        logger.info("activity import taken over by another delivery", extra={"job_id": job_id})
        return {"job_id": job_id, "status": "running"}
    except psycopg.DataError as exc:
        return _finish(run, "failed", f"rows {first}-{last} could not be written ({exc}); the rows before them "
                                      f"were imported")
    finally:
        ahead.close()
    if metrics["failed"] and not (metrics["inserted"] or metrics["duplicates"] or metrics["skipped_consent"]):
        return _finish(run, "failed", "no row could be imported: see failed_rows")
    return _finish(run, "partial" if metrics["failed"] else "completed", None)


def _write_chunk(run: _Run, chunk: _Chunk) -> None:
    """One transaction: resolve, stage, insert, and the job's new position and counts."""
    if not chunk.rows_read:
        return
    m = run.metrics
    with db.tenant_transaction(run.tenant_id) as conn:
        store.without_synchronous_commit(conn)
        job = store.lock_job(conn, run.job_id)
        if job is None or job["status"] != "running" or (job["metrics"] or {}).get("processed", 0) != m["processed"]:
            raise _Superseded()
        candidates, staged, skipped = _stage(conn, run, chunk.rows) if chunk.rows else (0, 0, 0)
        inserted = store.insert_from_staging(conn) if staged else 0
        failed = [(row, reason) for row, reason in chunk.failures if reason]
        m["processed"] += chunk.rows_read
        m["inserted"] += inserted
        m["duplicates"] += candidates - inserted
        m["skipped_consent"] += skipped
        m["failed"] += len(failed)
        room = MAX_FAILED_ROWS_KEPT - len(m["failed_rows"])
        m["failed_rows"] += [{"row": row, "reason": reason} for row, reason in failed[:max(room, 0)]]
        m["progress"] = round(100.0 * chunk.read_to / max(run.size, 1), 1)
        store.record_progress(conn, run.job_id, _stored(m))
    if inserted:
        count("ActivitiesIngested", inserted, tenant_id=run.tenant_id)


def _stored(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not k.startswith("_")}


def _resolve(conn: Connection, run: _Run, chunk: list[ParsedRow]) -> None:
    """The chunk's accounts and resources that this run has not met yet: one ``resolve_accounts`` call, one
    upsert (kept in ``run`` for the chunks after)."""
    new_accounts: dict[tuple[str, str], ParsedRow] = {}
    for p in chunk:
        if p.account and p.account not in run.accounts and p.account not in new_accounts:
            new_accounts[p.account] = p
    if new_accounts:
        ins = [identity.AccountIn(provider=k[0], external_user_id=k[1], seen_at=p.occurred_at,
                                  handle=p.profile.get("handle"), email=p.profile.get("email"),
                                  display_name=p.profile.get("display_name"), org=p.profile.get("org"),
                                  profile_url=p.profile.get("profile_url"))
               for k, p in new_accounts.items() if p.profile is not None]
        for key, resolved in zip(new_accounts, identity.resolve_accounts(conn, ins), strict=True):
            run.accounts[key] = (resolved.account_id, resolved.developer_id)
            run.who[key] = f"{resolved.developer_id.hex}\t{resolved.account_id.hex}"
    new_resources: dict[tuple[str, str], dict[str, Any]] = {}
    for p in chunk:
        if p.resource and p.resource not in run.resources and p.resource not in new_resources:
            new_resources[p.resource] = {"category": p.resource[0], "external_id": p.resource[1],
                                         **(p.resource_fields or {})}
    if new_resources:
        for r in store_activities.upsert_resources(conn, list(new_resources.values())):
            key = (r["category"], r["external_id"])
            run.resources[key] = (r["resource_id"], r["category"], r["group_key"])
            run.what[key] = f"{r['resource_id'].hex}\t{_copy(r['category'])}\t{_copy(r['group_key'])}"


def _stage(conn: Connection, run: _Run, chunk: list[ParsedRow]) -> tuple[int, int, int]:
    """COPY the chunk's new rows into the staging table. Returns (rows not withheld for consent, rows staged, rows
    withheld for consent): a row whose dedup key the tenant has, or that an earlier row of the chunk carries (the
    first one in the file is kept), is not staged (a duplicate)."""
    _resolve(conn, run, chunk)
    developers = {run.accounts[p.account][1] for p in chunk if p.account}
    withheld = store_activities.developers_without_consent(conn, sorted(developers, key=str)) if developers else set()
    accounts, is_tracking = run.accounts, activities.is_tracking
    kept: dict[str, ParsedRow] = {}
    skipped = candidates = 0
    for p in chunk:
        if p.account and accounts[p.account][1] in withheld and is_tracking(p.source, p.action):
            skipped += 1
            continue
        candidates += 1
        kept.setdefault(p.dedup_key, p)
    for key in store.existing_dedup_keys(conn, list(kept)):
        del kept[key]
    if not kept:
        return candidates, 0, skipped
    store.create_staging(conn)
    # STAGED_COLUMNS' order: who and what (as this run resolved them), the id, the row's own columns
    who, what = run.who, run.what
    nobody, nothing = "\\N\t\\N", "\\N\t\\N\t\\N"
    lines = [f"{who[p.account] if p.account else nobody}\t{what[p.resource] if p.resource else nothing}\t"
             f"{activity_id}\t{p.copy_text}"
             for activity_id, p in zip(_time_ordered_ids(len(kept)), kept.values(), strict=True)]
    store.copy_into_staging(conn, ("".join(lines[i:i + 5000]).encode() for i in range(0, len(lines), 5000)))
    return candidates, len(lines), skipped


def _time_ordered_ids(n: int) -> list[str]:
    """``n`` new activity ids (32 hex digits, as COPY reads a uuid) in increasing order: the time in milliseconds
    first, as UUIDv7 lays it out, then a counter and random bits. A chunk's rows then land at the right-hand end of
    the (tenant_id, activity_id) key instead of on a random page each (fewer pages touched and written to WAL)."""
    millis = time.time_ns() // 1_000_000
    bits = random.getrandbits
    out = []
    for counter in range(n):
        tick, sequence = divmod(counter, 4096)
        out.append(f"{((millis + tick) << 80) | (0x7 << 76) | (sequence << 64) | (0b10 << 62) | bits(62):032x}")
    return out


def _copy(value: str | None) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _finish(run: _Run, status: str, error: str | None) -> dict[str, Any]:
    m = run.metrics
    if status != "failed":
        m["progress"] = 100.0
    with db.tenant_transaction(run.tenant_id) as conn:
        job = store.lock_job(conn, run.job_id)
        if job is not None and job["status"] == "running":
            store.finish_job(conn, run.job_id, status, _stored(m), error)
    return {"job_id": run.job_id, "status": status, "error": error, **_stored(m)}
