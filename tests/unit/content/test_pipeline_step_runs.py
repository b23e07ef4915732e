"""How ``pipeline.run_step`` runs a step, over in-memory fakes of the run records (``funnel.platform.runs``),
the recorded artifacts (``store_pipeline``) and the object store: a completed step is not redone (its stored
reference is returned, so a resumed run reuses it), a failed step is recorded and re-raised and runs again on the
retry, a paused or cancelled run stops before the step, and a failure of a paused run leaves it paused. No
database, no S3: the fakes hold the rows and the objects in dicts."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from funnel.content import pipeline
from funnel.content.errors import RunHalted, TransientError
from funnel.content.pipeline_steps import StepResult

TENANT = "7d1f3f2e-0000-4000-8000-000000000000"
RUN = "3e2d1c0b-4444-4444-8444-444444444444"
ARTICLE = "0b6f1c1e-2222-4222-8222-222222222222"


class FakeRuns:
    """The ``funnel.platform.runs`` functions the pipeline calls, over one run, its steps and its outputs."""

    def __init__(self, **run):
        self.run = {"id": RUN, "status": "running", "config": {"product_id": "p-1", "schedule_job_id": None},
                    "execution_arn": "arn:execution:1", "created_by": None, "current_step": None, **run}
        self.steps: dict[tuple[str, str], dict] = {}
        self.objects: dict[str, dict] = {}  # output key -> output, what S3 holds
        self.digests: dict[str, str] = {}  # output key -> digest, what the artifacts table records

    def get_run(self, conn, run_id, for_update=False):
        return dict(self.run)

    def update_run(self, conn, run_id, **changes):
        self.run.update(changes)
        return dict(self.run)

    def step_status(self, conn, run_id, step, item_key=""):
        return self.steps.get((step, item_key), {}).get("status")

    def start_step(self, conn, run_id, step, item_key=""):
        row = self.steps.setdefault((step, item_key), {"status": None, "starts": 0, "retry_count": 0})
        row["retry_count"] += row["status"] in ("failed", "running")
        row.update(status="running", starts=row["starts"] + 1)

    def complete_step(self, conn, run_id, step, item_key="", **usage):
        self.steps[(step, item_key)]["status"] = "completed"

    def fail_step(self, conn, run_id, step, item_key="", error=""):
        self.steps[(step, item_key)].update(status="failed", error=error)

    def write_output(self, conn, tenant_id, run_id, step, output, *, summary, metrics=None, item_key=""):
        key = f"storage/{tenant_id}/{run_id}/{step}{'/' + item_key if item_key else ''}/output.json"
        self.objects[key], self.digests[key] = output, f"sha-{len(self.objects) + 1}"
        return {"output_path": key, "output_digest": self.digests[key], "summary": summary, "metrics": metrics or {}}


class FakeArtifacts:
    """``store_pipeline.artifact_digest`` over the digests ``FakeRuns.write_output`` recorded."""

    def __init__(self, runs: FakeRuns):
        self.runs = runs

    def artifact_digest(self, conn, run_id, file_path):
        return self.runs.digests.get(file_path)


class Step:
    """A pipeline step that answers ``result`` (or raises ``error``) and counts its calls."""

    def __init__(self, error: Exception | None = None):
        self.calls, self.error = 0, error

    def __call__(self, ctx):
        self.calls += 1
        if self.error:
            raise self.error
        return StepResult(output={"title": "written"}, summary="one article", metrics={"chars": 42})


@pytest.fixture
def fake(monkeypatch):
    """Install the fakes; ``write_article`` is the step under test. Returns (runs, step)."""
    def install(error=None, **run):
        runs, step = FakeRuns(**run), Step(error)

        @contextmanager
        def transaction(tenant_id):
            yield object()

        def get_json(key, digest=None):
            assert runs.digests[key] == digest, "the stored output is read with its recorded digest"
            return runs.objects[key]

        monkeypatch.setattr(pipeline, "runs", runs)
        monkeypatch.setattr(pipeline, "store_pipeline", FakeArtifacts(runs))
        monkeypatch.setattr(pipeline.db, "tenant_transaction", transaction)
        monkeypatch.setattr(pipeline.storage, "step_prefix", lambda tenant, run, step, item="":
                            f"storage/{tenant}/{run}/{step}{'/' + item if item else ''}")
        monkeypatch.setattr(pipeline.storage, "get_json", get_json)
        monkeypatch.setitem(pipeline.STEPS, "write_article", step)
        return runs, step
    return install


EVENT = {"step": "write_article", "tenant_id": TENANT, "run_id": RUN, "article_id": ARTICLE}


def test_a_step_runs_once_and_returns_only_a_reference(fake):
    runs, step = fake()
    reference = pipeline.run_step(EVENT)
    assert step.calls == 1 and runs.steps[("write_article", ARTICLE)]["status"] == "completed"
    assert reference == {"output_path": f"storage/{TENANT}/{RUN}/write_article/{ARTICLE}/output.json",
                         "output_digest": "sha-1", "summary": "one article", "metrics": {"chars": 42}}
    assert runs.objects[reference["output_path"]]["title"] == "written"


def test_a_completed_step_is_not_redone(fake):
    """A resumed run (a new execution) passes the finished steps again: they answer from their stored output."""
    runs, step = fake()
    first = pipeline.run_step(EVENT)
    again = pipeline.run_step(EVENT)
    assert step.calls == 1 and runs.steps[("write_article", ARTICLE)]["starts"] == 1
    assert again == {**first, "metrics": {"chars": 42, "reused": True}}


def test_a_completed_step_without_its_recorded_output_runs_again(fake):
    runs, step = fake()
    pipeline.run_step(EVENT)
    runs.digests.clear()  # the artifact row is gone: the reference cannot be rebuilt
    pipeline.run_step(EVENT)
    assert step.calls == 2


def test_a_failed_step_is_recorded_and_retried(fake):
    runs, step = fake(error=TransientError("WordPress answered 503"))
    with pytest.raises(TransientError):  # re-raised: the state machine's Retry matches its class name
        pipeline.run_step(EVENT)
    row = runs.steps[("write_article", ARTICLE)]
    assert row["status"] == "failed" and row["error"] == "TransientError: WordPress answered 503"
    assert not runs.objects
    step.error = None  # the retry succeeds
    pipeline.run_step(EVENT)
    assert step.calls == 2 and row["status"] == "completed" and row["retry_count"] == 1


@pytest.mark.parametrize("status", ["paused", "cancelled"])
def test_a_halted_run_stops_before_the_step(fake, status):
    runs, step = fake(status=status)
    with pytest.raises(RunHalted, match=f"the run is {status}"):
        pipeline.run_step(EVENT)
    assert step.calls == 0 and not runs.steps
    # Only a pause records which execution halted (a resume then starts a new one).
    assert runs.run["config"].get("halted_execution") == ("arn:execution:1" if status == "paused" else None)


def test_a_failed_run_goes_back_to_running_when_a_step_starts(fake):
    runs, step = fake(status="failed")
    pipeline.run_step(EVENT)
    assert runs.run["status"] == "running"


def test_a_failure_of_a_paused_run_leaves_it_paused(fake):
    runs, _ = fake(status="paused")
    answer = pipeline.record_failure({"tenant_id": TENANT, "run_id": RUN,
                                      "error": {"Error": "RunHalted", "Cause": "the run is paused"}})
    assert answer == {"halted": True, "status": "paused"} and runs.run["status"] == "paused"


def test_an_unknown_step_is_refused(fake):
    with pytest.raises(pipeline.PermanentError, match="unknown pipeline step"):
        pipeline.run_step({**EVENT, "step": "translate"})
