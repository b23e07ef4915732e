"""CSV import of activities as an ``activity_import_jobs`` run: the upload (checked, stored in S3, queued) and the
background processing (``run_import``, called by CommunityActivityImportFunction).

The processing reads the file in chunks of ``CHUNK_ROWS`` data rows. Each chunk is one transaction: its accounts
that this run has not met yet are resolved with ONE ``identity.resolve_accounts`` call, its resources upserted in
one statement, its rows COPYed into a staging table and moved into ``activities`` by one
``INSERT ... SELECT ... ON CONFLICT (tenant_id, dedup_key) DO NOTHING``, and the job's metrics (the position
reached, counts, failed rows) written with them. A retried message therefore resumes after the last committed
chunk, and every row has a deterministic dedup key (``row_dedup_key``), so nothing is inserted twice.

Row rules, the columns and the encodings: shared/funnel/community/README-activities.md.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from uuid import UUID

import psycopg

from funnel import db
from funnel.community import activities, identity, store_activities
from funnel.community import store_imports as store
from funnel.db import Connection, Row
from funnel.observability import count, logger
from funnel.platform import audit, aws, storage
from funnel.platform.errors import NotFound, ServiceUnavailable, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.settings import get_settings

CHUNK_ROWS = 20_000
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


def parse_row(number: int, cells: list[str], header: Header, zone: tzinfo) -> ParsedRow:
    """One data row (``number``: its row in the file, the header is row 1) or RowRejected with the reason."""
    names = header.names
    if len(cells) > len(names):
        raise RowRejected(f"has {len(cells)} cells, the header has {len(names)}")
    for position, cell in enumerate(cells):
        if "\x00" in cell:
            raise RowRejected(f"{names[position] or f'column {position + 1}'} contains a NUL character")
        if len(cell) > MAX_CELL_CHARS:
            raise RowRejected(f"{names[position] or f'column {position + 1}'} is longer than {MAX_CELL_CHARS} "
                              f"characters")
    index = header.index
    width = len(cells)

    def get(column: str) -> str | None:
        position = index.get(column)
        if position is None or position >= width:
            return None
        value = cells[position].strip()
        return value or None

    action = get("action")
    if action is None:
        raise RowRejected("action is missing")
    when = get("occurred_at")
    if when is None:
        raise RowRejected("occurred_at is missing")
    try:
        occurred_at = parse_time(when, zone)
    except ValueError:
        raise RowRejected(f"occurred_at is not a date and time (ISO 8601, e.g. 2026-01-31T09:00:00+09:00): "
                          f"{when[:50]!r}") from None
    values = {column: get(column) for column in FIELD_LIMITS}
    for column, limit in FIELD_LIMITS.items():
        value = values[column]
        if value is not None and len(value) > limit:
            raise RowRejected(f"{column} is longer than {limit} characters")
    source = values["source"] or DEFAULT_SOURCE
    provider, external_id, anon_id = values["provider"], values["external_user_id"], values["anon_id"]
    account = profile = None
    if provider or external_id:
        if not (provider and external_id):
            raise RowRejected("an account needs both provider and external_user_id")
        provider = provider.casefold()
        if not _PROVIDER.match(provider):
            raise RowRejected("provider is 1-50 characters of a-z, 0-9, '_', '.', '-'")
        account = (provider, external_id)
        profile = {"handle": get("handle"), "email": get("email"), "display_name": get("display_name"),
                   "org": get("org"), "profile_url": get("profile_url")}
    elif anon_id is None:
        raise RowRejected("no account (provider and external_user_id) and no anon_id")
    category, resource_id = values["resource_category"], values["resource_external_id"]
    resource = resource_fields = None
    if category or resource_id:
        if not (category and resource_id):
            raise RowRejected("a resource needs both resource_category and resource_external_id")
        resource = (category, resource_id)
        resource_fields = {"title": get("resource_title"), "url": get("resource_url"),
                           "group_key": get("resource_group_key")}
    metadata = _metadata(get("metadata"), cells, header)
    dedup_key = values["dedup_key"] or activities.derived_dedup_key(None, source, values["source_ref"]) or \
        row_dedup_key(source, occurred_at, action, "\x1e".join(account) if account else f"anon\x1e{anon_id}",
                      "\x1e".join(resource) if resource else "", metadata or "")
    return ParsedRow(number, occurred_at, action, source, values["source_ref"], dedup_key, account, profile,
                     anon_id, resource, resource_fields, metadata)


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
    return text if text is not None and len(found) == 1 and not header.extra else json.dumps(found,
                                                                                          ensure_ascii=False)


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


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415  (cold start: imports only)

    if name.upper() == "UTC":
        return UTC
    try:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", name):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValidationFailed.at(["query", "timezone"], "not an IANA time zone (e.g. Asia/Tokyo)") from None


def create_import(principal: Principal, body: bytes, content_type: str, timezone: str = "UTC") -> dict[str, Any]:
    """Check the file (an encoding this reads, a header with the needed columns: else a 422 and nothing kept),
    store it in S3, queue its job. Rows are checked by the background run, which reports each failed one."""
    _zone(timezone)
    data = _file_of(body, content_type)
    if not data.strip():
        raise ValidationFailed.at(["body"], "the CSV is empty")
    encoding, text = decode(data)
    try:
        first = next(csv.reader(io.StringIO(text[:200_000])), None)
    except csv.Error as exc:
        raise ValidationFailed(f"the CSV header cannot be read: {exc}", errors=[
            {"loc": ["body", "header"], "msg": str(exc), "type": "csv"}]) from exc
    if not first:
        raise ValidationFailed.at(["body"], "the CSV is empty")
    read_header(first)
    settings = get_settings()
    with db.tenant_transaction(principal.tenant_id) as conn:
        job = store.insert_job(conn, principal.user_id, encoding, {"timezone": timezone, "bytes": len(data)})
        key = f"imports/{principal.tenant_id}/activities/{job['job_id']}.csv"
        storage.put_bytes(key, data, "text/csv")
        store.set_job_file(conn, job["job_id"], key)
        audit.record(conn, principal, "activity.import", "activity_import_job", job["job_id"],
                     {"bytes": len(data), "encoding": encoding})
    try:
        aws.client("sqs").send_message(QueueUrl=settings.activity_import_queue_url, MessageBody=json.dumps(
            {"tenant_id": principal.tenant_id, "job_id": str(job["job_id"])}))
    except Exception as exc:  # the job would wait forever: end it, the caller uploads again
        logger.exception("activity import could not be queued", extra={"job_id": str(job["job_id"])})
        with db.tenant_transaction(principal.tenant_id) as conn:
            store.finish_job(conn, job["job_id"], "failed", job["metrics"], "the import could not be queued")
        raise ServiceUnavailable("the import queue cannot be reached; nothing was imported: upload again") from exc
    with db.tenant_transaction(principal.tenant_id) as conn:
        return job_view(get_job(conn, job["job_id"]))


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


def _lines(text: str, run: _Run, size: int) -> Iterator[str]:
    """The text's lines, keeping the share read in the run's metrics (the job's progress)."""
    read = 0
    for line in io.StringIO(text, newline=""):
        read += len(line)
        run.metrics["_read"] = read
        yield line
    run.metrics["_read"] = size


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
    reader = csv.reader(_lines(text, run, len(text)))
    try:
        header = read_header(next(reader))
    except (StopIteration, csv.Error, ValidationFailed) as exc:
        return _finish(run, "failed", getattr(exc, "detail", None) or "the CSV header cannot be read")
    done = metrics["processed"]  # data rows committed by an earlier attempt
    chunk: list[ParsedRow] = []
    failures: list[tuple[int, str]] = []
    number = 1
    try:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                _write_chunk(run, chunk, failures, len(chunk) + len(failures))
                return _finish(run, "failed", f"the CSV cannot be read after row {number}: {exc}; the rows before "
                                              f"it were imported")
            number += 1
            if number - 1 <= done:
                continue
            if not cells or not any(c.strip() for c in cells):
                failures.append((number, ""))  # a blank line: read, neither imported nor failed
            else:
                try:
                    chunk.append(parse_row(number, cells, header, zone))
                except RowRejected as exc:
                    failures.append((number, str(exc)))
            if len(chunk) + len(failures) >= chunk_rows:
                _write_chunk(run, chunk, failures, len(chunk) + len(failures))
                chunk, failures = [], []
        _write_chunk(run, chunk, failures, len(chunk) + len(failures))
    except _Superseded:
        logger.info("activity import taken over by another delivery", extra={"job_id": job_id})
        return {"job_id": job_id, "status": "running"}
    except psycopg.DataError as exc:
        return _finish(run, "failed", f"rows {chunk[0].row if chunk else number}-{number} could not be written "
                                      f"({exc}); the rows before them were imported")
    if metrics["failed"] and not (metrics["inserted"] or metrics["duplicates"] or metrics["skipped_consent"]):
        return _finish(run, "failed", "no row could be imported: see failed_rows")
    return _finish(run, "partial" if metrics["failed"] else "completed", None)


def _write_chunk(run: _Run, chunk: list[ParsedRow], failures: list[tuple[int, str]], rows_read: int) -> None:
    """One transaction: resolve, stage, insert, and the job's new position and counts."""
    if not rows_read:
        return
    m = run.metrics
    with db.tenant_transaction(run.tenant_id) as conn:
        store.without_synchronous_commit(conn)
        job = store.lock_job(conn, run.job_id)
        if job is None or job["status"] != "running" or (job["metrics"] or {}).get("processed", 0) != m["processed"]:
            raise _Superseded()
        staged, skipped = _stage(conn, run, chunk) if chunk else (0, 0)
        inserted = store.insert_from_staging(conn) if staged else 0
        failed = [(row, reason) for row, reason in failures if reason]
        m["processed"] += rows_read
        m["inserted"] += inserted
        m["duplicates"] += staged - inserted
        m["skipped_consent"] += skipped
        m["failed"] += len(failed)
        room = MAX_FAILED_ROWS_KEPT - len(m["failed_rows"])
        m["failed_rows"] += [{"row": row, "reason": reason} for row, reason in failed[:max(room, 0)]]
        m["progress"] = round(100.0 * m.get("_read", 0) / max(run.size, 1), 1)
        store.record_progress(conn, run.job_id, _stored(m))
    if inserted:
        count("ActivitiesIngested", inserted, tenant_id=run.tenant_id)


def _stored(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not k.startswith("_")}


def _stage(conn: Connection, run: _Run, chunk: list[ParsedRow]) -> tuple[int, int]:
    """COPY the chunk into the staging table; returns (rows staged, rows withheld for consent)."""
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
    new_resources: dict[tuple[str, str], dict[str, Any]] = {}
    for p in chunk:
        if p.resource and p.resource not in run.resources and p.resource not in new_resources:
            new_resources[p.resource] = {"category": p.resource[0], "external_id": p.resource[1],
                                         **(p.resource_fields or {})}
    if new_resources:
        for r in store_activities.upsert_resources(conn, list(new_resources.values())):
            run.resources[(r["category"], r["external_id"])] = (r["resource_id"], r["category"], r["group_key"])
    developers = {run.accounts[p.account][1] for p in chunk if p.account}
    withheld = store_activities.developers_without_consent(conn, sorted(developers, key=str)) if developers else set()
    store.create_staging(conn)
    lines: list[str] = []
    skipped = 0
    accounts, resources, is_tracking = run.accounts, run.resources, activities.is_tracking
    for p in chunk:
        if p.account:
            account_id, developer_id = accounts[p.account]
            if developer_id in withheld and is_tracking(p.source, p.action):
                skipped += 1
                continue
            who = f"{developer_id}\t{account_id}"
        else:
            who = "\\N\t\\N"
        if p.resource:
            resource_id, category, group_key = resources[p.resource]
            resource, cached = str(resource_id), f"{_copy(category)}\t{_copy(group_key)}"
        else:
            resource, cached = "\\N", "\\N\t\\N"
        # STAGED_COLUMNS' order
        lines.append(f"{who}\t{_copy(p.anon_id)}\t{resource}\t{_copy(p.action)}\t{p.occurred_at.isoformat()}\t"
                     f"{_copy(p.source)}\t{_copy(p.source_ref)}\t{cached}\t{_copy(p.metadata)}\t{_copy(p.dedup_key)}\n")
    if lines:
        store.copy_into_staging(conn, ("".join(lines[i:i + 5000]).encode() for i in range(0, len(lines), 5000)))
    return len(lines), skipped


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
