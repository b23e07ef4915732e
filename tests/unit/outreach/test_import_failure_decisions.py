"""A contact import that cannot go on ends visibly, over the in-memory fake store: a NUL or an over-long cell
rejects its row (named in the report, the owner told), a cell the csv module cannot read refuses the file with a
422 naming the line, a chunk the database refuses ends the job ``failed`` with the reason and the rows, and the
sweep ends an import that never finished."""
from __future__ import annotations

from types import SimpleNamespace

import psycopg
import pytest

from funnel.outreach import contacts
from funnel.platform.errors import ValidationFailed
from funnel.platform.principal import Principal
from tests.unit.outreach.fake_store import TENANT, USER

WRITER = Principal(TENANT, USER, "member")


@pytest.fixture
def background(monkeypatch):
    """Files of more than 2 rows import in the background, from an in-memory S3."""
    stored: dict[str, bytes] = {}
    monkeypatch.setattr(contacts, "get_settings", lambda: SimpleNamespace(contact_import_sync_rows=2,
                                                                          contact_import_queue_url="queue-url"))
    monkeypatch.setattr(contacts.storage, "put_bytes", lambda key, data, content_type: stored.update({key: data}))
    monkeypatch.setattr(contacts.storage, "get_bytes", lambda key: stored[key])
    monkeypatch.setattr(contacts.aws, "client", lambda name: SimpleNamespace(send_message=lambda **message: None))
    return stored


def _rows(count: int, bad: dict[int, str] | None = None) -> bytes:
    """A CSV of ``count`` data rows; ``bad`` maps a line number (the header is line 1) to its company cell."""
    lines = ["company_name,url"] + [f"{(bad or {}).get(n, f'Company {n}')},https://c{n}.example.com"
                                    for n in range(2, count + 2)]
    return "\n".join(lines).encode()


def test_a_nul_or_an_over_long_cell_rejects_its_row_and_the_rest_is_imported(outreach_store, monkeypatch):
    monkeypatch.setattr(contacts, "get_settings", lambda: SimpleNamespace(contact_import_sync_rows=1000))
    result = contacts.import_csv(WRITER, _rows(5, {3: "Null\x00Corp", 5: "x" * (contacts.MAX_CELL_CHARS + 1)}))
    assert (result["status"], result["imported"], result["rejected"]) == ("completed", 3, 2)
    assert [(r["row"], r["reason"]) for r in result["report"]] == [
        (3, "company_name contains a NUL character"),
        (5, f"company_name is longer than {contacts.MAX_CELL_CHARS} characters")]


def test_a_cell_the_csv_module_cannot_read_refuses_the_file_naming_the_line(outreach_store):
    with pytest.raises(ValidationFailed) as refused:
        contacts.import_csv(WRITER, _rows(3, {3: "y" * 200_000}))
    assert "line 3" in refused.value.detail
    assert refused.value.extra["errors"][0]["loc"] == ["body", "line", 3]
    assert outreach_store.import_jobs == {} and outreach_store.contacts == {}


def test_a_background_import_with_rejected_rows_completes_and_tells_its_owner(outreach_store, background):
    job_id = contacts.import_csv(WRITER, _rows(4, {4: "bad\x00"}))["import_job_id"]
    result = contacts.run_import_job(TENANT, job_id)
    assert outreach_store.import_jobs[job_id]["status"] == "completed"
    assert (result["imported"], [r["row"] for r in result["report"]]) == (3, [4])
    assert outreach_store.notified == [([USER], "Contact import finished: 3 of 4 rows imported",
                                        "1 rejected, 0 duplicates; the job's report names each row.")]


def test_a_chunk_the_database_refuses_fails_the_job_with_the_reason_and_its_rows(outreach_store, background,
                                                                                   monkeypatch):
    job_id = contacts.import_csv(WRITER, _rows(5))["import_job_id"]
    monkeypatch.setattr(contacts, "IMPORT_CHUNK_ROWS", 2)
    insert = outreach_store.insert_contact_unless_known

    def refusing(conn, user_id, values):
        if values["company_name"] == "Company 4":
            raise psycopg.DataError("invalid byte sequence")
        return insert(conn, user_id, values)

    monkeypatch.setattr(outreach_store, "insert_contact_unless_known", refusing)
    result = contacts.run_import_job(TENANT, job_id)
    job = outreach_store.import_jobs[job_id]
    assert result["status"] == job["status"] == "failed"
    assert job["error"] == "rows 4-5 could not be written (invalid byte sequence); 2 contacts were imported before them"
    assert outreach_store.notified == [([USER], "Contact import failed", job["error"])]
    assert contacts.run_import_job(TENANT, job_id) == {"import_job_id": job_id, "status": "failed"}  # not run again


def test_the_sweep_fails_imports_that_never_finished_and_tells_their_owners(outreach_store):
    stuck = outreach_store.insert_import_job(None, USER, "running", 1200)["id"]
    outreach_store.import_jobs[stuck]["age"] = contacts.STUCK_IMPORT_SECONDS + 1
    fresh = outreach_store.insert_import_job(None, USER, "running", 1200)["id"]
    assert contacts.fail_stuck_import_jobs(TENANT) == 1
    assert outreach_store.import_jobs[stuck]["status"] == "failed"
    assert "no end 60 minutes after the upload" in outreach_store.import_jobs[stuck]["error"]
    assert outreach_store.import_jobs[fresh]["status"] == "running"
    assert [(users, title) for users, title, _ in outreach_store.notified] == [([USER], "Contact import failed")]
