"""Contacts (target companies): CRUD and CSV import (UTF-8 or Shift_JIS/CP932 as Excel writes them)."""
from __future__ import annotations

import csv
import io
import json

import psycopg
from psycopg.types.json import Jsonb

from funnel import db
from funnel.db import Connection
from funnel.platform import audit, aws, storage
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.normalize import domain_of, normalize_email, normalize_phone, normalize_url
from funnel.platform.pagination import Page, keyset_page
from funnel.platform.principal import Principal
from funnel.settings import get_settings

CONTACT_COLUMNS = ("id, user_id, company_name, default_url, domain, default_contact_person, email, phone, "
                   "corporate_number, industry, metadata, created_at, updated_at")
MAX_IMPORT_ROWS = 50_000
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
    url = normalize_url(fields["url"]) if fields.get("url") else None
    corporate = "".join(c for c in (fields.get("corporate_number") or "") if c.isdigit()) or None
    if corporate and len(corporate) != 13:
        raise ValidationFailed("a corporate number (法人番号) has 13 digits")
    company = (fields.get("company_name") or "").strip()
    if not company:
        raise ValidationFailed("company_name is required")
    return {"company_name": company[:300], "default_url": url, "domain": domain_of(url) if url else None,
            "default_contact_person": (fields.get("contact_person") or "").strip() or None,
            "email": normalize_email(fields.get("email")), "phone": normalize_phone(fields.get("phone")),
            "corporate_number": corporate, "industry": (fields.get("industry") or "").strip() or None}


def create_contact(conn: Connection, principal: Principal, fields: dict) -> dict:
    values = _clean(fields)
    try:
        with conn.transaction():
            row = conn.execute(
                f"INSERT INTO contacts (user_id, company_name, default_url, domain, default_contact_person, email, "
                f"phone, corporate_number, industry, metadata) VALUES (%(user_id)s, %(company_name)s, "
                f"%(default_url)s, %(domain)s, %(default_contact_person)s, %(email)s, %(phone)s, "
                f"%(corporate_number)s, %(industry)s, %(metadata)s) RETURNING {CONTACT_COLUMNS}",
                {**values, "user_id": principal.user_id, "metadata": Jsonb(fields.get("metadata") or {})}).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"a contact for {values['domain']} exists") from exc
    audit.record(conn, principal, "contact.create", "contact", row["id"], {"domain": row["domain"]})
    return row


def get_contact(conn: Connection, contact_id: str) -> dict:
    row = conn.execute(f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = %s", (contact_id,)).fetchone()
    if row is None:
        raise NotFound("contact not found")
    return row


def list_contacts(conn: Connection, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table="contacts", columns=CONTACT_COLUMNS, cursor=cursor, limit=limit)


def delete_contact(conn: Connection, principal: Principal, contact_id: str) -> None:
    if conn.execute("DELETE FROM contacts WHERE id = %s", (contact_id,)).rowcount == 0:
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


def _parse(data: bytes) -> tuple[int, list[tuple[int, dict]], list[dict]]:
    """(data rows, accepted (row number, values), report of rejected/duplicate rows); raises on a broken file."""
    rows = list(csv.reader(io.StringIO(decode_csv(data))))
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
    imported = 0
    with conn.cursor() as cursor:
        for number, values in accepted:
            cursor.execute(
                "INSERT INTO contacts (user_id, company_name, default_url, domain, default_contact_person, email, "
                "phone, corporate_number, industry) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (tenant_id, domain) WHERE domain IS NOT NULL DO NOTHING RETURNING id",
                (user_id, values["company_name"], values["default_url"], values["domain"],
                 values["default_contact_person"], values["email"], values["phone"], values["corporate_number"],
                 values["industry"]))
            if cursor.fetchone():
                imported += 1
            else:
                report.append({"row": number, "status": "duplicate",
                               "reason": f"{values['domain']} is already a contact"})
    return imported


def _result(job_id, total: int, imported: int, report: list[dict], status: str = "completed") -> dict:
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
        job = conn.execute("INSERT INTO import_jobs (user_id, status, total_rows) VALUES (%s, %s, %s) RETURNING id",
                           (principal.user_id, "pending" if background else "running", total)).fetchone()
        audit.record(conn, principal, "contact.import", "import_job", job["id"], {"rows": total,
                                                                                 "background": background})
        if not background:
            imported = _insert(conn, principal.user_id, accepted, report)
            result = _result(job["id"], total, imported, report)
            conn.execute("UPDATE import_jobs SET status = 'completed', processed_rows = total_rows, imported = %s, "
                         "rejected = %s, report = %s, finished_at = now() WHERE id = %s",
                         (imported, result["rejected"], Jsonb(result["report"]), job["id"]))
            return result
        key = f"imports/{principal.tenant_id}/{job['id']}.csv"
        storage.put_bytes(key, data, "text/csv")
        conn.execute("UPDATE import_jobs SET source_path = %s WHERE id = %s", (key, job["id"]))
    aws.client("sqs").send_message(QueueUrl=settings.contact_import_queue_url, MessageBody=json.dumps(
        {"tenant_id": principal.tenant_id, "import_job_id": str(job["id"])}))
    return {"import_job_id": str(job["id"]), "status": "pending", "total_rows": total}


IMPORT_CHUNK_ROWS = 500


def run_import_job(tenant_id: str, job_id: str) -> dict:
    """The background import: chunks of rows, each committed with the job's progress."""
    with db.tenant_transaction(tenant_id) as conn:
        job = conn.execute("SELECT * FROM import_jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()
        if job is None or job["status"] == "completed":
            return {"import_job_id": job_id, "status": job["status"] if job else "gone"}
        conn.execute("UPDATE import_jobs SET status = 'running' WHERE id = %s", (job_id,))
    total, accepted, report = _parse(storage.get_bytes(job["source_path"]))
    imported = 0
    for start in range(0, len(accepted), IMPORT_CHUNK_ROWS):
        chunk = accepted[start:start + IMPORT_CHUNK_ROWS]
        with db.tenant_transaction(tenant_id) as conn:
            imported += _insert(conn, str(job["user_id"]) if job["user_id"] else None, chunk, report)
            conn.execute("UPDATE import_jobs SET processed_rows = %s, imported = %s WHERE id = %s",
                         (min(total, chunk[-1][0] - 1), imported, job_id))
    result = _result(job_id, total, imported, report)
    with db.tenant_transaction(tenant_id) as conn:
        conn.execute("UPDATE import_jobs SET status = 'completed', processed_rows = total_rows, imported = %s, "
                     "rejected = %s, report = %s, finished_at = now() WHERE id = %s",
                     (imported, result["rejected"], Jsonb(result["report"]), job_id))
    return result


def import_job(conn: Connection, job_id: str) -> dict:
    row = conn.execute("SELECT id, status, total_rows, processed_rows, imported, rejected, report, error, created_at, "
                       "finished_at FROM import_jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        raise NotFound("import job not found")
    return {**row, "progress": round(100 * row["processed_rows"] / row["total_rows"], 1) if row["total_rows"] else 100}


def update_contact(conn: Connection, principal: Principal, contact_id: str, changes: dict) -> dict:
    """Partial update; the merged contact is checked and normalised like a new one."""
    current = get_contact(conn, contact_id)
    merged = {"company_name": current["company_name"], "url": current["default_url"],
              "contact_person": current["default_contact_person"], "email": current["email"],
              "phone": current["phone"], "corporate_number": current["corporate_number"],
              "industry": current["industry"], **changes}
    values = _clean(merged)
    metadata = changes.get("metadata") if changes.get("metadata") is not None else current["metadata"]
    try:
        with conn.transaction():
            row = conn.execute(
                f"UPDATE contacts SET company_name = %(company_name)s, default_url = %(default_url)s, "
                f"domain = %(domain)s, default_contact_person = %(default_contact_person)s, email = %(email)s, "
                f"phone = %(phone)s, corporate_number = %(corporate_number)s, industry = %(industry)s, "
                f"metadata = %(metadata)s, updated_at = now() WHERE id = %(id)s RETURNING {CONTACT_COLUMNS}",
                {**values, "metadata": Jsonb(metadata), "id": contact_id}).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"a contact for {values['domain']} exists") from exc
    audit.record(conn, principal, "contact.update", "contact", contact_id, {"fields": sorted(changes)})
    return row
