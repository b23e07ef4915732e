"""The outreach area's data access for contacts and their CSV imports: every SQL statement over ``contacts``
and ``import_jobs``, as small named functions.

The rules (normalisation, one contact per domain, what a duplicate is, the import's report and chunks) stay
in ``contacts``, which calls these. Rows are psycopg dict rows, returned as they come: the routes' response
models validate exactly these shapes.
"""
from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row
from funnel.platform.pagination import Page, keyset_page

CONTACT_COLUMNS = ("id, user_id, company_name, default_url, domain, default_contact_person, email, phone, "
                   "corporate_number, industry, metadata, created_at, updated_at")
IMPORT_JOB_COLUMNS = ("id, status, total_rows, processed_rows, imported, rejected, report, error, created_at, "
                      "finished_at")
# ``values`` below are what ``contacts._clean`` returns: company_name, default_url, domain,
# default_contact_person, email, phone, corporate_number, industry.


# ---------------------------------------------------------------- contacts

def insert_contact(conn: Connection, user_id: str | None, values: dict[str, Any], metadata: dict[str, Any]) -> Row:
    """In a savepoint, so a UniqueViolation on the domain (which the caller translates) leaves the
    transaction usable."""
    with conn.transaction():
        row = conn.execute(
            f"INSERT INTO contacts (user_id, company_name, default_url, domain, default_contact_person, email, "
            f"phone, corporate_number, industry, metadata) VALUES (%(user_id)s, %(company_name)s, "
            f"%(default_url)s, %(domain)s, %(default_contact_person)s, %(email)s, %(phone)s, "
            f"%(corporate_number)s, %(industry)s, %(metadata)s) RETURNING {CONTACT_COLUMNS}",
            {**values, "user_id": user_id, "metadata": Jsonb(metadata)}).fetchone()
    assert row is not None  # INSERT ... RETURNING returns the row it inserted
    return row


def update_contact(conn: Connection, contact_id: str, values: dict[str, Any], metadata: Any) -> Row | None:
    """Replace every field (None when the contact is gone); in a savepoint like ``insert_contact``."""
    with conn.transaction():
        return conn.execute(
            f"UPDATE contacts SET company_name = %(company_name)s, default_url = %(default_url)s, "
            f"domain = %(domain)s, default_contact_person = %(default_contact_person)s, email = %(email)s, "
            f"phone = %(phone)s, corporate_number = %(corporate_number)s, industry = %(industry)s, "
            f"metadata = %(metadata)s, updated_at = now() WHERE id = %(id)s RETURNING {CONTACT_COLUMNS}",
            {**values, "metadata": Jsonb(metadata), "id": contact_id}).fetchone()


def get_contact(conn: Connection, contact_id: str) -> Row | None:
    return conn.execute(f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = %s", (contact_id,)).fetchone()


def contacts_page(conn: Connection, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table="contacts", columns=CONTACT_COLUMNS, cursor=cursor, limit=limit)


def delete_contact(conn: Connection, contact_id: str) -> bool:
    """False when there was none."""
    return conn.execute("DELETE FROM contacts WHERE id = %s", (contact_id,)).rowcount != 0


def insert_contact_unless_known(conn: Connection, user_id: str | None, values: dict[str, Any]) -> bool:
    """An imported contact; False (nothing written) when a contact has its domain already."""
    return conn.execute(
        "INSERT INTO contacts (user_id, company_name, default_url, domain, default_contact_person, email, "
        "phone, corporate_number, industry) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, domain) WHERE domain IS NOT NULL DO NOTHING RETURNING id",
        (user_id, values["company_name"], values["default_url"], values["domain"],
         values["default_contact_person"], values["email"], values["phone"], values["corporate_number"],
         values["industry"])).fetchone() is not None


def contacts_by_ids(conn: Connection, contact_ids: list[str]) -> list[Row]:
    """What a send task's targets take from its contacts (the ids that are contacts of the tenant)."""
    return conn.execute("SELECT id, company_name, default_url, domain, default_contact_person, email, phone, "
                        "corporate_number, industry FROM contacts WHERE id = ANY(%s::uuid[])",
                        (contact_ids,)).fetchall()


def suppression_keys(conn: Connection, contact_id: str) -> Row | None:
    """The contact's ``email, phone, corporate_number``: what the do-not-contact list is checked against."""
    return conn.execute("SELECT email, phone, corporate_number FROM contacts WHERE id = %s",
                        (contact_id,)).fetchone()


# ---------------------------------------------------------------- import jobs

def insert_import_job(conn: Connection, user_id: str | None, status: str, total_rows: int) -> Row:
    """Returns the new job's ``id``."""
    row = conn.execute("INSERT INTO import_jobs (user_id, status, total_rows) VALUES (%s, %s, %s) RETURNING id",
                       (user_id, status, total_rows)).fetchone()
    assert row is not None  # INSERT ... RETURNING returns the row it inserted
    return row


def set_import_source(conn: Connection, job_id: str, source_path: str) -> None:
    conn.execute("UPDATE import_jobs SET source_path = %s WHERE id = %s", (source_path, job_id))


def lock_import_job(conn: Connection, job_id: str) -> Row | None:
    """The whole job row, locked FOR UPDATE (None when there is none)."""
    return conn.execute("SELECT * FROM import_jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()


def mark_import_running(conn: Connection, job_id: str) -> None:
    conn.execute("UPDATE import_jobs SET status = 'running' WHERE id = %s", (job_id,))


def record_import_progress(conn: Connection, job_id: str, processed_rows: int, imported: int) -> None:
    conn.execute("UPDATE import_jobs SET processed_rows = %s, imported = %s WHERE id = %s",
                 (processed_rows, imported, job_id))


def complete_import_job(conn: Connection, job_id: str, imported: int, rejected: int,
                        report: list[dict[str, Any]]) -> None:
    """Completed, every row processed, with the counts and the report."""
    conn.execute("UPDATE import_jobs SET status = 'completed', processed_rows = total_rows, imported = %s, "
                 "rejected = %s, report = %s, finished_at = now() WHERE id = %s",
                 (imported, rejected, Jsonb(report), job_id))


def fail_import_job(conn: Connection, job_id: str, error: str, report: list[dict[str, Any]]) -> None:
    """Failed for ``error``, with the report of the rows processed so far; the counts stay as far as it got."""
    conn.execute("UPDATE import_jobs SET status = 'failed', error = %s, report = %s, "
                 "rejected = (SELECT count(*) FROM jsonb_array_elements(%s::jsonb) r WHERE r->>'status' = 'rejected'), "
                 "finished_at = now() WHERE id = %s", (error, Jsonb(report), Jsonb(report), job_id))


def fail_import_jobs_older_than(conn: Connection, seconds: int, error: str) -> list[Row]:
    """Every job still pending or running ``seconds`` after it was created ends failed with ``error``:
    ``id, user_id, error`` of each."""
    return conn.execute("UPDATE import_jobs SET status = 'failed', error = %s, finished_at = now() "
                        "WHERE status IN ('pending', 'running') AND created_at < now() - make_interval(secs => %s) "
                        "RETURNING id, user_id, error", (error, seconds)).fetchall()


def get_import_job(conn: Connection, job_id: str) -> Row | None:
    return conn.execute(f"SELECT {IMPORT_JOB_COLUMNS} FROM import_jobs WHERE id = %s", (job_id,)).fetchone()
