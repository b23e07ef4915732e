"""Contacts (target companies): CRUD and CSV import (UTF-8 or Shift_JIS/CP932 as Excel writes them)."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

import psycopg

from funnel import db
from funnel.db import Connection, Row
from funnel.notifications.service import notify
from funnel.outreach import store_contacts as store
from funnel.platform import audit, aws, storage
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.normalize import ascii_digits, domain_of, normalize_email, normalize_phone, normalize_url
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.settings import get_settings

MAX_IMPORT_ROWS = 50_000
MAX_CELL_CHARS = 10_000  # no contact field needs more; a longer cell rejects its row
# CSV header -> field; Japanese headers as Excel users write them.
HEADERS = {
    "company_name": ("company_name", "company", "会社名", "企業名", "社名"),
    "url": ("url", "website", "homepage", "web", "ホームページ", "サイト", "ウェブサイト", "hp"),
    "contact_person": ("contact_person", "contact", "担当者", "担当者名", "ご担当者"),
    "email": ("email", "e-mail", "mail", "メール", "メールアドレス"),
    "phone": ("phone", "tel", "telephone", "電話", "電話番号"),
    "industry": ("industry", "業種"),
    "corporate_number": ("corporate_number", "法人番号"),
}


def _clean(fields: dict) -> dict:
    url = normalize_url(fields["url"], loc=["body", "url"]) if fields.get("url") else None
    corporate = ascii_digits(fields.get("corporate_number")) or None  # full-width １２３ typed in Japan counts
    if corporate and len(corporate) != 13:
        raise ValidationFailed("a corporate number (法人番号) has 13 digits")
    company = (fields.get("company_name") or "").strip()
    if not company:
        raise ValidationFailed("company_name is required")
    return {"company_name": company[:300], "default_url": url, "domain": domain_of(url) if url else None,
            "default_contact_person": (fields.get("contact_person") or "").strip() or None,
            "email": normalize_email(fields.get("email")), "phone": normalize_phone(fields.get("phone")),
            "corporate_number": corporate, "industry": (fields.get("industry") or "").strip() or None}


def create_contact(conn: Connection, principal: Principal, fields: dict) -> Row:
    values = _clean(fields)
    try:
        row = store.insert_contact(conn, principal.user_id, values, fields.get("metadata") or {})
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"a contact for {values['domain']} exists") from exc
    audit.record(conn, principal, "contact.create", "contact", row["id"], {"domain": row["domain"]})
    return row


def get_contact(conn: Connection, contact_id: str) -> Row:
    row = store.get_contact(conn, contact_id)
    if row is None:
        raise NotFound("contact not found")
    return row


def list_contacts(conn: Connection, cursor: str | None, limit: int) -> Page:
    return store.contacts_page(conn, cursor, limit)


def delete_contact(conn: Connection, principal: Principal, contact_id: str) -> None:
    if not store.delete_contact(conn, contact_id):
        raise NotFound("contact not found")
    audit.record(conn, principal, "contact.delete", "contact", contact_id)


def decode_csv(data: bytes) -> str:
    """Excel writes UTF-8 (with a BOM) or Shift_JIS/CP932; anything else is refused, never guessed."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp932")
    except UnicodeDecodeError:
        text = None
    # CP932 maps a few stray bytes to private-use or C1 control characters: no Excel file contains them.
    if text is not None and not any("\ue000" <= ch <= "\uf8ff" or "\x80" <= ch <= "\x9f" for ch in text):
        return text
    raise ValidationFailed("the file is neither UTF-8 nor Shift_JIS (CP932): save it again as CSV UTF-8")


def _column_map(header: list[str]) -> dict[str, int]:
    mapping = {}
    for index, name in enumerate(header):
        key = name.strip().lower()
        for field, names in HEADERS.items():
            if key in names and field not in mapping:
                mapping[field] = index
    if "url" not in mapping:
        raise ValidationFailed("the CSV has no URL column (url, website, ホームページ, ...)",
                               columns=[h.strip() for h in header])
    if "company_name" not in mapping:
        raise ValidationFailed("the CSV has no company name column (company_name, 会社名, ...)",
                               columns=[h.strip() for h in header])
    return mapping


def _read_rows(text: str) -> list[list[str]]:
    """Every row of the file. A cell the csv module cannot read (over its 128 KiB field limit, e.g. a 200 KB
    cell) makes the file unreadable from that point: the whole file is refused, naming the line."""
    reader = csv.reader(io.StringIO(text))
    try:
        return list(reader)
    except csv.Error as exc:
        raise ValidationFailed(f"the CSV cannot be read at line {reader.line_num}: {exc}", errors=[
            {"loc": ["body", "line", reader.line_num], "msg": str(exc), "type": "csv"}]) from exc


def _unstorable_cell(row: list[str], header: list[str]) -> str | None:
    """Why a row cannot be stored as it is (a NUL character, which PostgreSQL text cannot hold; a cell longer
    than MAX_CELL_CHARS), or None."""
    for index, cell in enumerate(row):
        column = header[index].strip() if index < len(header) else f"column {index + 1}"
        if "\x00" in cell:
            return f"{column} contains a NUL character"
        if len(cell) > MAX_CELL_CHARS:
            return f"{column} is longer than {MAX_CELL_CHARS} characters"
    return None


def _parse(data: bytes) -> tuple[int, list[tuple[int, dict]], list[dict]]:
    """(data rows, accepted (row number, values), report of rejected/duplicate rows); raises on a broken file."""
    rows = _read_rows(decode_csv(data))
    if not rows:
        raise ValidationFailed("the CSV is empty")
    mapping = _column_map(rows[0])
    body = rows[1:]
    if len(body) > MAX_IMPORT_ROWS:
        raise ValidationFailed(f"at most {MAX_IMPORT_ROWS} rows per file")
    report, accepted, seen = [], [], set()
    for number, row in enumerate(body, start=2):
        fields = {field: row[index] if index < len(row) else "" for field, index in mapping.items()}
        if not any(cell.strip() for cell in row):
            continue
        unstorable = _unstorable_cell(row, rows[0])
        if unstorable:
            report.append({"row": number, "status": "rejected", "reason": unstorable})
            continue
        try:
            values = _clean(fields)
        except ValidationFailed as exc:
            report.append({"row": number, "status": "rejected", "reason": exc.detail})
            continue
        if values["domain"] in seen:
            report.append({"row": number, "status": "duplicate",
                           "reason": f"{values['domain']} appears earlier in the file"})
            continue
        seen.add(values["domain"])
        accepted.append((number, values))
    return len(body), accepted, report


def _insert(conn: Connection, user_id: str | None, accepted: list[tuple[int, dict]], report: list[dict]) -> int:
    """Insert the accepted rows; a row whose domain is a contact already goes into ``report`` as a duplicate."""
    imported = 0
    for number, values in accepted:
        if store.insert_contact_unless_known(conn, user_id, values):
            imported += 1
        else:
            report.append({"row": number, "status": "duplicate", "reason": f"{values['domain']} is already a contact"})
    return imported


def _result(job_id: Any, total: int, imported: int, report: list[dict], status: str = "completed") -> dict:
    report.sort(key=lambda item: item["row"])
    return {"import_job_id": str(job_id), "status": status, "total_rows": total, "imported": imported,
            "duplicates": sum(1 for item in report if item["status"] == "duplicate"),
            "rejected": sum(1 for item in report if item["status"] == "rejected"), "report": report}


def import_csv(principal: Principal, data: bytes) -> dict:
    """Import contacts. Small files are imported at once; larger ones (more than
    ``contact_import_sync_rows``) become a background job (stored in S3, queued) whose progress
    ``import_job`` reports. Either way the result lists every rejected or duplicate row and why."""
    total, accepted, report = _parse(data)  # a broken file is refused before anything is written
    settings = get_settings()
    with db.tenant_transaction(principal.tenant_id) as conn:
        background = total > settings.contact_import_sync_rows
        job = store.insert_import_job(conn, principal.user_id, "pending" if background else "running", total)
        audit.record(conn, principal, "contact.import", "import_job", job["id"], {"rows": total,
                                                                                 "background": background})
        if not background:
            imported = _insert(conn, principal.user_id, accepted, report)
            result = _result(job["id"], total, imported, report)
            store.complete_import_job(conn, job["id"], imported, result["rejected"], result["report"])
            return result
        key = f"imports/{principal.tenant_id}/{job['id']}.csv"
        storage.put_bytes(key, data, "text/csv")
        store.set_import_source(conn, job["id"], key)
    aws.client("sqs").send_message(QueueUrl=settings.contact_import_queue_url, MessageBody=json.dumps(
        {"tenant_id": principal.tenant_id, "import_job_id": str(job["id"])}))
    return {"import_job_id": str(job["id"]), "status": "pending", "total_rows": total}


IMPORT_CHUNK_ROWS = 500


# A background import with no end this long after it was created is stuck (its worker died, or every retry
# failed): the sweep ends it. 50,000 rows (the most a file may have) take a few minutes.
STUCK_IMPORT_SECONDS = 3600


def run_import_job(tenant_id: str, job_id: str) -> dict:
    """The background import: chunks of rows, each committed with the job's progress. Rows that cannot be
    imported are rejected in the report (the job completes: a partial import, its report names each row). A
    chunk that cannot be written for a reason retrying cannot mend (the database refuses a value) ends the job
    ``failed`` with the reason and the rows of that chunk; the rows of earlier chunks stay imported (importing the
    file again skips them as duplicates). The owner is notified either way when something was not imported."""
    with db.tenant_transaction(tenant_id) as conn:
        job = store.lock_import_job(conn, job_id)
        if job is None or job["status"] in ("completed", "failed"):
            return {"import_job_id": job_id, "status": job["status"] if job else "gone"}
        store.mark_import_running(conn, job_id)
    owner = str(job["user_id"]) if job["user_id"] else None
    try:
        total, accepted, report = _parse(storage.get_bytes(job["source_path"]))
    except ValidationFailed as exc:  # the file was checked at upload: only a changed object gets here
        return _fail_import_job(tenant_id, job_id, owner, exc.detail, [])
    imported = 0
    for start in range(0, len(accepted), IMPORT_CHUNK_ROWS):
        chunk = accepted[start:start + IMPORT_CHUNK_ROWS]
        try:
            with db.tenant_transaction(tenant_id) as conn:
                imported += _insert(conn, owner, chunk, report)
                # the chunk's last CSV line (the header is line 1) is how many data rows are processed
                store.record_import_progress(conn, job_id, min(total, chunk[-1][0] - 1), imported)
        except psycopg.DataError as exc:
            rows = f"rows {chunk[0][0]}-{chunk[-1][0]}"
            return _fail_import_job(tenant_id, job_id, owner,
                                    f"{rows} could not be written ({exc}); {imported} contacts were imported before "
                                    f"them", report)
    result = _result(job_id, total, imported, report)
    with db.tenant_transaction(tenant_id) as conn:
        store.complete_import_job(conn, job_id, imported, result["rejected"], result["report"])
        if owner and report:
            _notify_owner(tenant_id, owner, job_id, f"Contact import finished: {imported} of {total} rows imported",
                          f"{result['rejected']} rejected, {result['duplicates']} duplicates; the job's report names "
                          f"each row.", conn)
    return result


def _fail_import_job(tenant_id: str, job_id: str, owner: str | None, reason: str, report: list[dict]) -> dict:
    report.sort(key=lambda item: item["row"])
    with db.tenant_transaction(tenant_id) as conn:
        store.fail_import_job(conn, job_id, reason, report)
        if owner:
            _notify_owner(tenant_id, owner, job_id, "Contact import failed", reason, conn)
    return {"import_job_id": job_id, "status": "failed", "error": reason}


def _notify_owner(tenant_id: str, owner: str, job_id: Any, title: str, body: str, conn: Connection) -> None:
    notify(tenant_id, recipient_user_ids=[owner], category="outreach.import", title=title, body=body,
           priority="HIGH", related_entity_type="import_job", related_entity_id=str(job_id), conn=conn)


def fail_stuck_import_jobs(tenant_id: str, older_than_seconds: int = STUCK_IMPORT_SECONDS) -> int:
    """The sweep: every import still pending or running ``older_than_seconds`` after it was created ends
    ``failed`` with the reason, and its owner is notified. Returns how many."""
    with db.tenant_transaction(tenant_id) as conn:
        stuck = store.fail_import_jobs_older_than(
            conn, older_than_seconds, f"stopped: no end {older_than_seconds // 60} minutes after the upload "
                                      f"(the import worker stopped or kept failing); upload the file again")
        for job in stuck:
            if job["user_id"]:
                _notify_owner(tenant_id, str(job["user_id"]), job["id"], "Contact import failed", job["error"], conn)
    return len(stuck)


def import_job(conn: Connection, job_id: str) -> dict:
    row = store.get_import_job(conn, job_id)
    if row is None:
        raise NotFound("import job not found")
    return {**row, "progress": round(100 * row["processed_rows"] / row["total_rows"], 1) if row["total_rows"] else 100}


def update_contact(conn: Connection, principal: Principal, contact_id: str, changes: dict) -> Row:
    """Partial update; the merged contact is checked and normalised like a new one."""
    current = get_contact(conn, contact_id)
    merged = {"company_name": current["company_name"], "url": current["default_url"],
              "contact_person": current["default_contact_person"], "email": current["email"],
              "phone": current["phone"], "corporate_number": current["corporate_number"],
              "industry": current["industry"], **changes}
    values = _clean(merged)
    metadata = changes.get("metadata") if changes.get("metadata") is not None else current["metadata"]
    try:
        row = store.update_contact(conn, contact_id, values, metadata)
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"a contact for {values['domain']} exists") from exc
    if row is None:  # deleted since it was read
        raise NotFound("contact not found")
    audit.record(conn, principal, "contact.update", "contact", contact_id, {"fields": sorted(changes)})
    return row
