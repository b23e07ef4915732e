"""Contacts' rules over the in-memory fake store (conftest.py): a contact is normalised and one per domain (409
otherwise, also after an edit); an import de-duplicates domains within the file and against existing contacts
and reports every row it did not import; a large file becomes a background job (stored, queued) imported in
chunks that each record the job's progress."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from funnel.outreach import contacts
from funnel.platform.errors import Conflict, NotFound
from funnel.platform.principal import Principal
from tests.unit.outreach.fake_store import TENANT, USER

WRITER = Principal(TENANT, USER, "member")
CSV = ("会社名,ホームページ,電話番号\n"
       "アルファ,alpha.example.com,03-1111-2222\n"
       "ベータ,https://www.beta.example.com/contact,\n"
       "アルファ again,https://alpha.example.com/x,\n"        # the same domain earlier in the file
       ",gamma.example.com,\n"                                 # no company name
       "Known,known.example.com,\n"                            # a contact already
       "デルタ,delta.example.com,\n").encode("cp932")


@pytest.fixture
def background(monkeypatch):
    """Files of more than 2 rows import in the background; ``background.stored`` / ``.queued`` say what went where."""
    fake = SimpleNamespace(stored={}, queued=[])
    monkeypatch.setattr(contacts, "get_settings", lambda: SimpleNamespace(contact_import_sync_rows=2,
                                                                          contact_import_queue_url="queue-url"))
    monkeypatch.setattr(contacts.storage, "put_bytes", lambda key, data, content_type: fake.stored.update({key: data}))
    monkeypatch.setattr(contacts.storage, "get_bytes", lambda key: fake.stored[key])
    monkeypatch.setattr(contacts.aws, "client", lambda name: SimpleNamespace(
        send_message=lambda **message: fake.queued.append(message)))
    return fake


def _known(store):
    return contacts.create_contact(None, WRITER, {"company_name": "Known", "url": "KNOWN.example.com"})


def test_a_contact_is_normalised_and_one_per_domain(outreach_store):
    row = contacts.create_contact(None, WRITER, {"company_name": " Alpha ", "url": "https://WWW.Alpha.example.com/x",
                                                 "email": " CEO@Alpha.example.com ", "phone": "03-1111-2222",
                                                 "corporate_number": "1234-5678-90123"})
    assert (row["company_name"], row["default_url"], row["domain"], row["email"], row["phone"],
            row["corporate_number"]) == ("Alpha", "https://www.alpha.example.com/x", "alpha.example.com",
                                         "ceo@alpha.example.com", "0311112222", "1234567890123")
    with pytest.raises(Conflict, match="a contact for alpha.example.com exists"):
        contacts.create_contact(None, WRITER, {"company_name": "Other", "url": "alpha.example.com"})
    assert outreach_store.audit == ["contact.create"]


def test_an_edit_is_merged_normalised_again_and_may_not_take_another_contacts_domain(outreach_store):
    known = _known(outreach_store)
    other = contacts.create_contact(None, WRITER, {"company_name": "Other", "url": "other.example.com",
                                                   "metadata": {"source": "fair"}})
    edited = contacts.update_contact(None, WRITER, other["id"], {"url": "HTTPS://Other.Example.com/new"})
    assert (edited["company_name"], edited["default_url"], edited["metadata"]) == (
        "Other", "https://other.example.com/new", {"source": "fair"})
    with pytest.raises(Conflict, match="a contact for known.example.com exists"):
        contacts.update_contact(None, WRITER, other["id"], {"url": "www.known.example.com"})
    with pytest.raises(NotFound):
        contacts.update_contact(None, WRITER, "gone", {"industry": "x"})
    assert outreach_store.contacts[known["id"]]["company_name"] == "Known"


def test_a_small_file_is_imported_at_once_with_every_row_it_did_not_import_reported(outreach_store, monkeypatch):
    monkeypatch.setattr(contacts, "get_settings", lambda: SimpleNamespace(contact_import_sync_rows=1000))
    _known(outreach_store)
    result = contacts.import_csv(WRITER, CSV)
    assert (result["status"], result["total_rows"], result["imported"], result["duplicates"], result["rejected"]) == (
        "completed", 6, 3, 2, 1)
    assert [(r["row"], r["status"]) for r in result["report"]] == [(4, "duplicate"), (5, "rejected"), (6, "duplicate")]
    assert result["report"][2]["reason"] == "known.example.com is already a contact"
    assert sorted(c["domain"] for c in outreach_store.contacts.values()) == [
        "alpha.example.com", "beta.example.com", "delta.example.com", "known.example.com"]
    job = outreach_store.import_jobs[result["import_job_id"]]
    assert (job["status"], job["imported"], job["rejected"], job["report"]) == ("completed", 3, 1, result["report"])


def test_a_large_file_is_stored_and_queued_then_imported_in_chunks_recording_progress(
        outreach_store, background, monkeypatch):
    _known(outreach_store)
    pending = contacts.import_csv(WRITER, CSV)
    job_id = pending["import_job_id"]
    assert pending == {"import_job_id": job_id, "status": "pending", "total_rows": 6}
    assert outreach_store.import_jobs[job_id]["source_path"] == f"imports/{TENANT}/{job_id}.csv"
    assert [json.loads(m["MessageBody"]) for m in background.queued] == [{"tenant_id": TENANT,
                                                                          "import_job_id": job_id}]
    assert len(outreach_store.contacts) == 1  # nothing imported yet

    monkeypatch.setattr(contacts, "IMPORT_CHUNK_ROWS", 2)
    result = contacts.run_import_job(TENANT, job_id)
    assert (result["imported"], result["duplicates"], result["rejected"]) == (3, 2, 1)
    # accepted rows are lines 2, 3, 6 and 7: chunks end at lines 3 and 7 (data rows 2 and 6)
    assert outreach_store.progress == [(2, 2), (6, 3)]
    assert outreach_store.import_jobs[job_id]["status"] == "completed"
    assert contacts.import_job(None, job_id)["progress"] == 100.0


def test_a_finished_or_missing_import_job_is_not_run_again(outreach_store, background):
    job_id = contacts.import_csv(WRITER, CSV)["import_job_id"]
    contacts.run_import_job(TENANT, job_id)
    imported = dict(outreach_store.contacts)
    assert contacts.run_import_job(TENANT, job_id) == {"import_job_id": job_id, "status": "completed"}
    assert outreach_store.contacts == imported
    assert contacts.run_import_job(TENANT, "gone") == {"import_job_id": "gone", "status": "gone"}


def test_an_import_jobs_progress_is_the_share_of_rows_processed(outreach_store):
    job = outreach_store.insert_import_job(None, USER, "running", 3)
    outreach_store.record_import_progress(None, job["id"], 1, 1)
    assert contacts.import_job(None, job["id"])["progress"] == 33.3
    with pytest.raises(NotFound):
        contacts.import_job(None, "gone")
