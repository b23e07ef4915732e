"""The stuck-job sweep against real PostgreSQL, through the scheduled function the local runtime runs: a run
without progress for longer than the deadline and a contact import never finished an hour after its upload end
``failed`` with the reason, their owners are told; a run that moves and another pooled tenant's stuck run are
each left to their own tenant's sweep (RLS): neither is touched through the first tenant."""
from __future__ import annotations

import pytest

from funnel import db
from funnel.outreach import contacts
from funnel.platform import runs
from tests.support.tenants import new_tenant

POOL = "funnel_pool_sweep"


@pytest.fixture(scope="module")
def tenants(runtime):
    return new_tenant(pool=POOL), new_tenant(pool=POOL)


def _run(tenant, idle_seconds: int) -> str:
    with db.tenant_transaction(tenant.tenant_id) as conn:
        run = runs.create_run(conn, "article", {}, tenant.owner_id)
        runs.update_run(conn, str(run["id"]), status="running")
        conn.execute("UPDATE runs SET updated_at = now() - make_interval(secs => %s) WHERE id = %s",
                     (idle_seconds, run["id"]))
    return str(run["id"])


def test_the_sweep_fails_stuck_runs_and_imports_with_the_reason_and_tells_their_owners(runtime, api, tenants):
    mine, neighbour = tenants
    stuck, moving = _run(mine, runs.STUCK_RUN_SECONDS + 60), _run(mine, 60)
    neighbours = _run(neighbour, runs.STUCK_RUN_SECONDS + 60)
    with db.tenant_transaction(mine.tenant_id) as conn:
        job = conn.execute("INSERT INTO import_jobs (user_id, status, total_rows, created_at) VALUES "
                           "(%s, 'running', 1200, now() - make_interval(secs => %s)) RETURNING id",
                           (mine.owner_id, contacts.STUCK_IMPORT_SECONDS + 60)).fetchone()["id"]
    outcome = runtime.invoke("EmailRemindersFunction", {})
    assert outcome["failed_tenants"] == 0 and outcome["stuck_jobs_failed"] >= 3  # mine (2) and the neighbour's

    swept = api.get(f"/v1/runs/{stuck}", headers=mine.headers).json()
    assert swept["status"] == "failed" and swept["finished_at"] is not None
    assert swept["error_message"] == "stopped by the stuck-run sweep: no progress for 360 minutes"
    assert api.get(f"/v1/runs/{moving}", headers=mine.headers).json()["status"] == "running"
    assert api.get(f"/v1/runs/{neighbours}", headers=neighbour.headers).json()["status"] == "failed"
    imported = api.get(f"/v1/contacts/import-jobs/{job}", headers=mine.headers).json()
    assert imported["status"] == "failed" and "no end 60 minutes after the upload" in imported["error"]
    titles = sorted(n["title"] for n in api.get("/v1/notifications", headers=mine.headers).json()["items"])
    assert titles == ["Contact import failed", "Run article failed"]


def test_one_tenants_sweep_never_touches_a_pooled_neighbours_runs(runtime, tenants):
    mine, neighbour = tenants
    stuck, neighbours = _run(mine, runs.STUCK_RUN_SECONDS + 60), _run(neighbour, runs.STUCK_RUN_SECONDS + 60)
    with db.tenant_transaction(mine.tenant_id) as conn:
        assert [str(r["id"]) for r in runs.fail_stuck_runs(conn)] == [stuck]
    with db.tenant_transaction(neighbour.tenant_id) as conn:
        assert runs.get_run(conn, neighbours)["status"] == "running"
