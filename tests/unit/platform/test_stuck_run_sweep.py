"""The stuck-run sweep over a fake ``store_runs``: a pending or running run without progress past the deadline
ends ``failed`` with the reason, a paused, finished or recently moved one is left alone, and the scheduled
function tells whoever started each swept run."""
from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from pathlib import Path

import pytest

from funnel.platform import runs

ROOT = Path(__file__).resolve().parents[3]
TENANT, USER = "tenant-1", "user-1"


class FakeStore:
    """``runs`` (id -> row); a row's ``idle`` (seconds since its ``updated_at``) stands for the clock."""

    def __init__(self):
        self.runs = {}

    def add(self, run_id, status, idle, created_by=USER):
        self.runs[run_id] = {"id": run_id, "kind": "article", "status": status, "idle": idle,
                             "created_by": created_by, "error_message": None}

    def fail_runs_idle_for(self, conn, seconds, error):
        stuck = [row for row in self.runs.values() if row["status"] in ("pending", "running") and row["idle"] > seconds]
        for row in stuck:
            row.update(status="failed", error_message=error, idle=0)
        return [dict(row) for row in stuck]


@pytest.fixture
def store(monkeypatch):
    fake = FakeStore()
    monkeypatch.setattr(runs, "store_runs", fake)
    return fake


def test_only_pending_or_running_runs_idle_past_the_deadline_are_failed_with_the_reason(store):
    deadline = runs.STUCK_RUN_SECONDS
    store.add("stuck-running", "running", deadline + 1)
    store.add("stuck-pending", "pending", deadline + 1)
    store.add("moving", "running", deadline - 60)
    store.add("paused", "paused", deadline * 10)  # waits for its send window: never swept
    store.add("done", "completed", deadline * 10)
    swept = runs.fail_stuck_runs(object())
    assert sorted(r["id"] for r in swept) == ["stuck-pending", "stuck-running"]
    assert {r: store.runs[r]["status"] for r in store.runs} == {
        "stuck-running": "failed", "stuck-pending": "failed", "moving": "running", "paused": "paused",
        "done": "completed"}
    assert store.runs["stuck-running"]["error_message"] == "stopped by the stuck-run sweep: no progress for 360 minutes"


def test_the_scheduled_function_notifies_whoever_started_each_swept_run(store, monkeypatch):
    spec = importlib.util.spec_from_file_location("email_reminders_app", ROOT / "functions/email_reminders/app.py")
    assert spec and spec.loader
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)

    @contextmanager
    def transaction(tenant_id):
        assert tenant_id == TENANT
        yield object()

    notified = []
    monkeypatch.setattr(app.db, "tenant_transaction", transaction)
    monkeypatch.setattr(app, "notify", lambda tenant_id, **kwargs: notified.append((tenant_id, kwargs)))
    store.add("stuck", "running", runs.STUCK_RUN_SECONDS + 1)
    store.add("nobody", "running", runs.STUCK_RUN_SECONDS + 1, created_by=None)  # started by the system
    assert app.fail_stuck_runs(TENANT) == 2
    assert [(tenant, kwargs["recipient_user_ids"], kwargs["title"], kwargs["body"], kwargs["related_entity_id"])
            for tenant, kwargs in notified] == [
        (TENANT, [USER], "Run article failed", store.runs["stuck"]["error_message"], "stuck")]
