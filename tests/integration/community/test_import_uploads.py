"""Presigned uploads of activity CSVs above the API's body limit, through the API and the local runtime's S3 (moto
server over HTTP, as `make dev` serves it): the file is PUT to the presigned URL, then imported from its upload
id; an unknown or another tenant's upload is 404; one not uploaded yet, imported already or expired is 409; a file
above the upload's maximum size is 422 (and deleted), as is a bad header."""
from __future__ import annotations

import time
import uuid

import httpx
import pytest

from funnel.community import imports
from funnel.platform import storage
from funnel.settings import get_settings
from tests.integration.community.conftest import COMMUNITY_POOL, PROBLEM
from tests.support.tenants import new_tenant

HEADER = "occurred_at,action,provider,external_user_id,display_name"


def _csv(prefix: str, count: int) -> bytes:
    return "\n".join([HEADER, *(f"2026-06-01T09:{n % 60:02d}:00+09:00,attend,connpass,{prefix}{n},User {n}"
                                for n in range(count))]).encode() + b"\n"


def _upload(api, headers, data: bytes) -> dict:
    answer = api.post("/v1/activity-imports/uploads", headers=headers, json={"bytes": len(data)})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _put(upload: dict, data: bytes) -> httpx.Response:
    return httpx.put(upload["url"], content=data, headers=upload["headers"], timeout=30)


def _from_upload(api, headers, upload_id: str, **body) -> httpx.Response:
    return api.post("/v1/activity-imports/from-upload", headers=headers, json={"upload_id": upload_id, **body})


def _finished(api, headers, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/v1/activity-imports/{job_id}", headers=headers).json()
        if job["status"] in ("completed", "partial", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_a_file_put_to_the_presigned_url_is_imported_from_its_upload_id(api, owner_headers, monkeypatch):
    # a header probe smaller than the file: the job's creation reads a range of it, cut after a line end
    monkeypatch.setattr(imports, "HEADER_PROBE_BYTES", 100)
    p = uuid.uuid4().hex[:6]
    data = _csv(p, 40)
    upload = _upload(api, owner_headers, data)
    assert upload["method"] == "PUT" and upload["max_bytes"] == imports.MAX_UPLOAD_BYTES
    assert upload["max_bytes"] > get_settings().max_bulk_body_bytes
    assert upload["expires_at"] < upload["import_before"]

    early = _from_upload(api, owner_headers, upload["upload_id"])
    assert early.status_code == 409 and early.headers["content-type"] == PROBLEM, early.text
    assert "PUT the file first" in early.json()["detail"]

    put = _put(upload, data)
    assert put.status_code == 200, put.text
    answer = _from_upload(api, owner_headers, upload["upload_id"], timezone="Asia/Tokyo")
    assert answer.status_code == 202, answer.text
    assert (answer.json()["status"], answer.json()["encoding"]) == ("queued", "utf-8")
    job = _finished(api, owner_headers, answer.json()["job_id"])
    assert (job["status"], job["metrics"]["inserted"], job["metrics"]["processed"]) == ("completed", 40, 40), job
    listed = api.get("/v1/activities", headers=owner_headers, params={"source": "csv", "action": "attend"}).json()
    assert any(a["occurred_at"] == "2026-06-01T00:00:00Z" for a in listed["items"])

    again = _from_upload(api, owner_headers, upload["upload_id"])
    assert again.status_code == 409 and job["job_id"] in again.json()["detail"], again.text


def test_unknown_and_another_tenants_uploads_are_not_found(api, owner_headers):
    assert _from_upload(api, owner_headers, str(uuid.uuid4())).status_code == 404
    other = new_tenant(pool=COMMUNITY_POOL)
    data = _csv("other", 1)
    theirs = _upload(api, other.headers, data)
    assert _put(theirs, data).status_code == 200
    answer = _from_upload(api, owner_headers, theirs["upload_id"])
    assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM, answer.text


def test_an_expired_upload_is_a_conflict(api, owner_headers, tenant_conn):
    data = _csv("late", 1)
    upload = _upload(api, owner_headers, data)
    assert _put(upload, data).status_code == 200
    with tenant_conn() as conn:
        conn.execute("UPDATE activity_import_uploads SET expires_at = now() - make_interval(secs => %s) "
                     "WHERE upload_id = %s", (imports.UPLOAD_IMPORT_WITHIN_SECONDS + 60, upload["upload_id"]))
    answer = _from_upload(api, owner_headers, upload["upload_id"])
    assert answer.status_code == 409 and "expired" in answer.json()["detail"], answer.text


def test_a_file_above_the_uploads_maximum_is_refused_and_deleted(api, owner_headers, tenant_conn):
    data = _csv("big", 20)
    upload = _upload(api, owner_headers, b"x" * 10)  # the client declared less than it sends
    with tenant_conn() as conn:
        conn.execute("UPDATE activity_import_uploads SET max_bytes = 10 WHERE upload_id = %s",
                     (upload["upload_id"],))
        key = conn.execute("SELECT file_path FROM activity_import_uploads WHERE upload_id = %s",
                           (upload["upload_id"],)).fetchone()["file_path"]
    assert _put(upload, data).status_code == 200
    answer = _from_upload(api, owner_headers, upload["upload_id"])
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["body", "upload_id"]
    with pytest.raises(Exception, match="404|Not Found|NoSuchKey"):
        storage.get_bytes(key)


@pytest.mark.parametrize("body", [{"bytes": 0}, {"bytes": imports.MAX_UPLOAD_BYTES + 1}, {}])
def test_an_upload_of_no_size_or_beyond_the_maximum_is_refused(api, owner_headers, body):
    answer = api.post("/v1/activity-imports/uploads", headers=owner_headers, json=body)
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, answer.text


def test_an_uploaded_file_without_the_needed_columns_is_refused(api, owner_headers):
    data = b"action,email\nstar,a@example.com\n"
    upload = _upload(api, owner_headers, data)
    assert _put(upload, data).status_code == 200
    answer = _from_upload(api, owner_headers, upload["upload_id"])
    assert answer.status_code == 422 and answer.json()["errors"][0]["loc"] == ["body", "header"], answer.text


def test_the_sweep_deletes_uploads_never_imported_in_time(api, community_tenant, owner_headers, tenant_conn):
    data = _csv("gone", 1)
    upload = _upload(api, owner_headers, data)
    assert _put(upload, data).status_code == 200
    with tenant_conn() as conn:
        conn.execute("UPDATE activity_import_uploads SET expires_at = now() - make_interval(secs => %s) "
                     "WHERE upload_id = %s", (imports.UPLOAD_IMPORT_WITHIN_SECONDS + 60, upload["upload_id"]))
        key = conn.execute("SELECT file_path FROM activity_import_uploads WHERE upload_id = %s",
                           (upload["upload_id"],)).fetchone()["file_path"]
    assert imports.sweep(community_tenant.tenant_id)["expired_uploads"] >= 1
    assert _from_upload(api, owner_headers, upload["upload_id"]).status_code == 404
    with pytest.raises(Exception, match="404|Not Found|NoSuchKey"):
        storage.get_bytes(key)
