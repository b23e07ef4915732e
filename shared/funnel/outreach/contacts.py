"""Contacts (target companies): CRUD and CSV import (UTF-8 or Shift_JIS/CP932 as Excel writes them)."""
from __future__ import annotations

import csv
import io

import psycopg
from psycopg import Connection
from psycopg.types.json import Jsonb

from funnel.outreach.normalize import domain_of, normalize_email, normalize_phone, normalize_url
from funnel.platform import audit
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.pagination import Page, keyset_page
from funnel.platform.principal import Principal

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


def import_csv(conn: Connection, principal: Principal, data: bytes) -> dict:
    """Import contacts; returns counts and a per-row report of what was rejected or skipped, and why."""
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
            report.append({"row": number, "status": "duplicate", "reason": f"{values['domain']} appears earlier in the file"})
            continue
        seen.add(values["domain"])
        accepted.append((number, values))
    job = conn.execute("INSERT INTO import_jobs (user_id, status, total_rows) VALUES (%s, 'running', %s) RETURNING id",
                       (principal.user_id, len(body))).fetchone()
    imported = 0
    with conn.cursor() as cursor:
        for number, values in accepted:
            cursor.execute(
                "INSERT INTO contacts (user_id, company_name, default_url, domain, default_contact_person, email, "
                "phone, corporate_number, industry) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (tenant_id, domain) WHERE domain IS NOT NULL DO NOTHING RETURNING id",
                (principal.user_id, values["company_name"], values["default_url"], values["domain"],
                 values["default_contact_person"], values["email"], values["phone"], values["corporate_number"],
                 values["industry"]))
            if cursor.fetchone():
                imported += 1
            else:
                report.append({"row": number, "status": "duplicate", "reason": f"{values['domain']} is already a contact"})
    report.sort(key=lambda item: item["row"])
    rejected = sum(1 for item in report if item["status"] == "rejected")
    conn.execute("UPDATE import_jobs SET status = 'completed', processed_rows = total_rows, imported = %s, rejected = %s, "
                 "report = %s, finished_at = now() WHERE id = %s", (imported, rejected, Jsonb(report), job["id"]))
    audit.record(conn, principal, "contact.import", "import_job", job["id"], {"imported": imported, "rejected": rejected})
    return {"import_job_id": str(job["id"]), "total_rows": len(body), "imported": imported,
            "duplicates": sum(1 for item in report if item["status"] == "duplicate"), "rejected": rejected,
            "report": report}
