"""Activity CSV imports through the API and the local runtime's queue (CommunityActivityImportFunction) against
real PostgreSQL: duplicates, bad rows named with their row numbers and reasons, CP932 text, a NUL byte, progress
and metrics, a refused file that keeps nothing, and a retried (interrupted) job that inserts nothing twice."""
from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest

from funnel.community import imports, store_imports
from funnel.platform import storage
from tests.integration.community.conftest import PROBLEM
from tests.support.tenants import row_count

HEADER = "occurred_at,action,provider,external_user_id,display_name,source_ref,resource_category," \
         "resource_external_id,metadata,campaign"


def upload(api, headers, data: bytes, **params):
    return api.post("/v1/activity-imports", headers={**headers, "content-type": "text/csv"}, content=data,
                    params=params)


def finished(api, headers, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/v1/activity-imports/{job_id}", headers=headers).json()
        if job["status"] in ("completed", "partial", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def lines(prefix: str, count: int, start_day: int = 1) -> list[str]:
    return [f"2026-03-{start_day + n % 20:02d}T10:{n % 60:02d}:00Z,star,github,{prefix}{n % 7},User {n % 7},,repo,"
            f"acme/{prefix},,spring" for n in range(count)]


def of_prefix(conn, prefix: str) -> list[dict]:
    """The activities of the accounts whose external ids start with ``prefix`` (one test's file)."""
    return conn.execute("SELECT x.* FROM activities x JOIN accounts a ON a.account_id = x.account_id "
                        "WHERE a.external_user_id LIKE %s", (prefix + "%",)).fetchall()


def test_a_file_with_duplicates_bad_rows_and_a_nul_byte_completes_partially_naming_each_row(
        api, community_tenant, owner_headers, tenant_conn):
    p = uuid.uuid4().hex[:6]
    rows = lines(p, 6)
    rows += [rows[0],                                                      # row 8: the same event again
             f"not a date,star,github,{p}0,,,,,,",                         # row 9
             f"2026-03-01T10:00:00Z,,github,{p}0,,,,,,",                   # row 10
             f"2026-03-01T10:00:00Z,star,github,{p}0,Null\x00Corp,,,,,",   # row 11
             f"2026-03-01T11:00:00Z,fork,github,{p}1,,ev-{p},,,\"{{\"\"ref\"\": 1}}\",",  # row 12
             f"2026-03-01T11:00:00Z,fork,github,{p}1,,ev-{p},,,,",         # row 13: its source_ref again
             "",                                                           # a blank line: skipped
             "2026-03-01T12:00:00Z,star,,,,,,,,"]                         # row 15: nobody
    answer = upload(api, owner_headers, "\n".join([HEADER, *rows]).encode())
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued" and answer.json()["encoding"] == "utf-8"
    job = finished(api, owner_headers, answer.json()["job_id"])
    assert job["status"] == "partial", job
    metrics = job["metrics"]
    assert (metrics["processed"], metrics["inserted"], metrics["duplicates"], metrics["failed"]) == (14, 7, 2, 4)
    assert metrics["progress"] == 100.0
    assert metrics["failed_rows"] == [
        {"row": 9, "reason": "occurred_at is not a date and time (ISO 8601, e.g. 2026-01-31T09:00:00+09:00): "
                             "'not a date'"},
        {"row": 10, "reason": "action is missing"},
        {"row": 11, "reason": "display_name contains a NUL character"},
        {"row": 15, "reason": "no account (provider and external_user_id) and no anon_id"}]
    listed = api.get("/v1/activities", headers=owner_headers, params={"source": "csv", "action": "fork"}).json()
    fork = next(a for a in listed["items"] if a["source_ref"] == f"ev-{p}")
    assert fork["metadata"] == {"ref": 1} and fork["dedup_key"] == f"csv:ev-{p}"
    with tenant_conn() as conn:
        mine = of_prefix(conn, p)
    assert len(mine) == 7 and len({a["resource_id"] for a in mine if a["action"] == "star"}) == 1
    assert len({a["account_id"] for a in mine}) == 6 == len({a["developer_id"] for a in mine})
    assert {(a["category"], json.dumps(a["metadata"], sort_keys=True)) for a in mine if a["action"] == "star"} == {
        ("repo", '{"campaign": "spring"}')}

    again = finished(api, owner_headers, upload(api, owner_headers, "\n".join([HEADER, *rows]).encode())
                     .json()["job_id"])
    assert (again["metrics"]["inserted"], again["metrics"]["duplicates"]) == (0, 9)  # the same file: nothing new


def test_cp932_text_as_a_multipart_form_in_the_callers_time_zone(api, community_tenant, owner_headers, tenant_conn):
    user = f"cp932-{uuid.uuid4().hex[:6]}"
    text = (f"日時,アクション,provider,external_user_id,氏名,会社名\n"
            f"2026/04/01 09:00,attend,connpass,{user},髙橋 一郎,株式会社サンプル\n")
    answer = api.post("/v1/activity-imports", headers=owner_headers, params={"timezone": "Asia/Tokyo"},
                      files={"file": ("export.csv", text.encode("cp932"), "text/csv")})
    assert answer.status_code == 202, answer.text
    job = finished(api, owner_headers, answer.json()["job_id"])
    assert (job["status"], job["encoding"], job["metrics"]["inserted"]) == ("completed", "cp932", 1), job
    with tenant_conn() as conn:
        account = conn.execute("SELECT a.display_name, a.attributes, x.occurred_at FROM accounts a "
                               "JOIN activities x ON x.account_id = a.account_id WHERE a.external_user_id = %s",
                               (user,)).fetchone()
    assert account["display_name"] == "髙橋 一郎" and account["attributes"]["org"] == "株式会社サンプル"
    assert account["occurred_at"].isoformat() == "2026-04-01T00:00:00+00:00"


def test_a_file_that_cannot_be_read_is_refused_and_nothing_is_kept(api, community_tenant, owner_headers):
    before = row_count(community_tenant, "activity_import_jobs")
    for data, loc in [(b"action,email\nstar,a@example.com\n", ["body", "header"]),
                      ("名前".encode("utf-16"), None), (b"", ["body"])]:
        answer = upload(api, owner_headers, data)
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, answer.text
        if loc:
            assert answer.json()["errors"][0]["loc"] == loc
    bad_zone = upload(api, owner_headers, f"{HEADER}\n".encode(), timezone="Mars/Olympus")
    assert bad_zone.status_code == 422 and bad_zone.json()["errors"][0]["loc"] == ["query", "timezone"]
    assert row_count(community_tenant, "activity_import_jobs") == before


def test_jobs_are_listed_newest_first_and_another_tenants_are_not_found(api, community_tenant, owner_headers):
    job_id = upload(api, owner_headers, f"{HEADER}\n{lines('list', 1)[0]}\n".encode()).json()["job_id"]
    finished(api, owner_headers, job_id)
    assert api.get("/v1/activity-imports", headers=owner_headers).json()["items"][0]["job_id"] == job_id
    assert api.get(f"/v1/activity-imports/{uuid.uuid4()}", headers=owner_headers).status_code == 404


def test_an_interrupted_job_resumes_on_retry_and_inserts_nothing_twice(api, runtime, community_tenant, owner_headers,
                                                                       tenant_conn, monkeypatch):
    p = uuid.uuid4().hex[:6]
    data = "\n".join([HEADER, *lines(p, 50), "broken,star,github,x,,,,,,"]).encode()  # row 52 fails
    tenant = community_tenant.tenant_id
    key = f"imports/{tenant}/activities/{p}.csv"  # a queued job as the upload leaves it, its message not sent yet
    storage.put_bytes(key, data, "text/csv")
    with tenant_conn() as conn:
        job_id = str(store_imports.insert_job(conn, community_tenant.owner_id, "utf-8", {"timezone": "UTC"})["job_id"])
        store_imports.set_job_file(conn, job_id, key)

    # the first attempt dies after two chunks of 10 (a lost connection: the queue will deliver again)
    real_insert, calls = store_imports.insert_from_staging, []

    def dies_on_the_third_chunk(conn):
        calls.append(1)
        if len(calls) == 3:
            raise psycopg.OperationalError("the connection was lost")
        return real_insert(conn)

    monkeypatch.setattr(store_imports, "insert_from_staging", dies_on_the_third_chunk)
    with pytest.raises(psycopg.OperationalError):
        imports.run_import(tenant, job_id, chunk_rows=10)
    monkeypatch.undo()
    halfway = api.get(f"/v1/activity-imports/{job_id}", headers=owner_headers).json()
    assert (halfway["status"], halfway["metrics"]["processed"], halfway["metrics"]["inserted"]) == ("running", 20, 20)
    assert 0 < halfway["metrics"]["progress"] < 100

    # the retry, through the runtime's queue and function, resumes after row 21
    runtime.client("sqs").send_message(QueueUrl=runtime.queue_urls["CommunityActivityImportQueue"],
                                       MessageBody=json.dumps({"tenant_id": tenant, "job_id": job_id}))
    job = finished(api, owner_headers, job_id)
    assert job["status"] == "partial", job
    assert (job["metrics"]["processed"], job["metrics"]["inserted"], job["metrics"]["duplicates"]) == (51, 50, 0)
    assert job["metrics"]["failed_rows"][0]["row"] == 52

    # a stale replay that lost the job's position (status and metrics reset) finds every row already there
    with tenant_conn() as conn:
        conn.execute("UPDATE activity_import_jobs SET status = 'queued', metrics = metrics - 'processed' "
                     "- 'inserted' - 'duplicates' - 'failed' - 'failed_rows' WHERE job_id = %s", (job_id,))
    replay = imports.run_import(tenant, job_id)
    assert (replay["status"], replay["inserted"], replay["duplicates"]) == ("partial", 0, 50)
    with tenant_conn() as conn:
        assert len(of_prefix(conn, p)) == 50


def test_a_key_another_transaction_inserts_meanwhile_is_a_duplicate_not_an_error(community_tenant, tenant_conn):
    """The chunk's plain INSERT waits on the other transaction's uncommitted key, fails when it commits, and the
    chunk goes in again with ON CONFLICT DO NOTHING (its savepoint rolled back)."""
    import threading

    from funnel.community import store_activities

    key, fresh = f"race-{uuid.uuid4().hex}", f"race-{uuid.uuid4().hex}"
    row = {"activity_id": None, "developer_id": None, "account_id": None, "anon_id": "racer", "resource_id": None,
           "action": "scan", "occurred_at": "2026-05-01T00:00:00Z", "source": "qr", "source_ref": None,
           "category": None, "group_key": None, "metadata": None}
    # store_imports.STAGED_COLUMNS: nobody, no resource, an id, then the row's own columns
    staged = "".join(f"\\N\t\\N\t\\N\t\\N\t\\N\t{uuid.uuid4().hex}\tracer\tscan\t2026-05-01T00:00:00Z\tqr\t\\N\t"
                     f"\\N\t{k}\n" for k in (key, fresh)).encode()
    inserted: list[int] = []
    with tenant_conn() as other:
        store_activities.insert_activities(other, [{**row, "activity_id": uuid.uuid4(), "dedup_key": key}])

        def import_chunk() -> None:
            with tenant_conn() as conn:
                store_imports.create_staging(conn)
                store_imports.copy_into_staging(conn, [staged])
                inserted.append(store_imports.insert_from_staging(conn))

        importer = threading.Thread(target=import_chunk)
        importer.start()
        deadline = time.monotonic() + 30
        with tenant_conn() as probe:  # commit the other key only once the chunk waits on it
            while not probe.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                    "AND query LIKE 'INSERT INTO activities%%'").fetchone()["n"]:
                assert time.monotonic() < deadline, "the chunk never waited on the other transaction"
                probe.execute("SELECT pg_stat_clear_snapshot()")
    importer.join(30)
    assert inserted == [1]
    with tenant_conn() as conn:
        assert len(conn.execute("SELECT 1 FROM activities WHERE dedup_key = ANY(%s)", ([key, fresh],)).fetchall()) == 2
