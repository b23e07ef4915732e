"""Run and step rules (``funnel.platform.runs``) over an in-memory fake of ``store_runs``: a status moves the
run's timestamps, a step counts toward the run's progress once however often it completes, a failure keeps a
bounded error, and a missing run is a NotFound. No database. (A step's retry count is kept by the upsert's SQL,
atomically; the content pipeline's end-to-end tests cover it.)"""
from __future__ import annotations

import itertools

import pytest

from funnel.platform import runs
from funnel.platform.errors import NotFound

CONN = object()  # the fake ignores the connection
RUN = "3f0c8f5e-1111-4111-8111-111111111111"


class FakeStore:
    """``store_runs`` over ``runs`` (id -> row) and ``steps`` ((run, step, item) -> row); ``clock`` stands for
    ``now()``, one tick per statement."""

    def __init__(self):
        self.clock = itertools.count(1)
        self.runs = {RUN: {"id": RUN, "kind": "article", "status": "pending", "current_step": None,
                           "steps_total": 3, "steps_done": 0, "started_at": None, "finished_at": None}}
        self.steps: dict[tuple[str, str, str], dict] = {}

    def select_run(self, conn, run_id, for_update=False):
        row = self.runs.get(run_id)
        return dict(row) if row else None

    def update_run(self, conn, run_id, changes, *, mark_started, finished):
        row = self.runs.get(run_id)
        if row is None:
            return None
        now = next(self.clock)
        row.update(changes)
        if mark_started and row["started_at"] is None:
            row["started_at"] = now
        if finished is not None:
            row["finished_at"] = now if finished else None
        return dict(row)

    def set_current_step(self, conn, run_id, step):
        self.runs[run_id]["current_step"] = step

    def count_step_done(self, conn, run_id):
        self.runs[run_id]["steps_done"] += 1

    def select_step_status(self, conn, run_id, step, item_key):
        row = self.steps.get((run_id, step, item_key))
        return row["status"] if row else None

    def _upsert(self, run_id, step, item_key, **values):
        row = self.steps.setdefault((run_id, step, item_key), {"run_id": run_id, "step": step, "item_key": item_key})
        row.update(values)
        return dict(row)

    def upsert_running_step(self, conn, run_id, step, item_key, llm_model):
        return self._upsert(run_id, step, item_key, status="running", llm_model=llm_model)

    def upsert_completed_step(self, conn, run_id, step, item_key, token_usage, cost_usd, llm_model):
        return self._upsert(run_id, step, item_key, status="completed", token_usage=token_usage, cost_usd=cost_usd)

    def upsert_failed_step(self, conn, run_id, step, item_key, error):
        return self._upsert(run_id, step, item_key, status="failed", error_message=error)

    def select_steps(self, conn, run_id):
        return [dict(row) for row in self.steps.values() if row["run_id"] == run_id]


@pytest.fixture
def store(monkeypatch):
    fake = FakeStore()
    monkeypatch.setattr(runs, "store_runs", fake)
    return fake


def test_running_sets_started_at_once(store):
    first = runs.update_run(CONN, RUN, status="running")
    again = runs.update_run(CONN, RUN, status="running", current_step="write")
    assert first["started_at"] == again["started_at"] is not None and again["finished_at"] is None


@pytest.mark.parametrize("status", runs.TERMINAL)
def test_a_terminal_status_sets_finished_at(store, status):
    runs.update_run(CONN, RUN, status="running")
    assert runs.update_run(CONN, RUN, status=status)["finished_at"] is not None


def test_a_rerun_clears_finished_at_and_other_changes_leave_the_timestamps(store):
    runs.update_run(CONN, RUN, status="running")
    finished = runs.update_run(CONN, RUN, status="failed", error_message="boom")
    unchanged = runs.update_run(CONN, RUN, execution_arn="arn:2")
    assert unchanged["finished_at"] == finished["finished_at"] and unchanged["started_at"] == finished["started_at"]
    rerun = runs.update_run(CONN, RUN, status="running")
    assert rerun["finished_at"] is None and rerun["started_at"] == finished["started_at"]


def test_a_missing_run_is_not_found(store):
    for call in (lambda: runs.get_run(CONN, "nope"), lambda: runs.update_run(CONN, "nope", status="running"),
                 lambda: runs.list_steps(CONN, "nope"), lambda: runs.list_artifacts(CONN, "nope")):
        with pytest.raises(NotFound):
            call()


def test_starting_a_step_makes_it_the_runs_current_step(store):
    runs.start_step(CONN, RUN, "analyze")
    assert store.runs[RUN]["current_step"] == "analyze" and runs.step_status(CONN, RUN, "analyze") == "running"


def test_a_step_counts_toward_progress_once(store):
    runs.start_step(CONN, RUN, "write", "section-1")
    runs.complete_step(CONN, RUN, "write", "section-1")
    runs.complete_step(CONN, RUN, "write", "section-1")  # a redelivered completion
    runs.complete_step(CONN, RUN, "write", "section-2")
    assert store.runs[RUN]["steps_done"] == 2


def test_a_step_completed_after_failing_counts_once(store):
    runs.start_step(CONN, RUN, "publish")
    runs.fail_step(CONN, RUN, "publish", error="timeout")
    runs.start_step(CONN, RUN, "publish")
    runs.complete_step(CONN, RUN, "publish")
    assert store.runs[RUN]["steps_done"] == 1 and runs.step_status(CONN, RUN, "publish") == "completed"


def test_a_step_outside_the_progress_does_not_count(store):
    runs.complete_step(CONN, RUN, "notify", counts_toward_progress=False)
    assert store.runs[RUN]["steps_done"] == 0


def test_a_failure_keeps_a_bounded_error_message(store):
    row = runs.fail_step(CONN, RUN, "analyze", error="x" * 10_000)
    assert row["status"] == "failed" and len(row["error_message"]) == runs.MAX_ERROR_LENGTH
