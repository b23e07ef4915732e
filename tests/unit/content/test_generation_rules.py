"""The rules of starting article generation (``generation``) over in-memory fakes of the stores and the run
records: the subscription gate (402 while canceled or unpaid; trial and past_due still generate), what a product
needs before a run is created (a site with an application password that is not suspended), the steps a run counts
for its progress, and a schedule's job following its run when resumed or cancelled. No database."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from funnel.content import generation
from funnel.platform.errors import Conflict, ValidationFailed
from funnel.platform.principal import Principal

TENANT = "7d1f3f2e-0000-4000-8000-000000000000"
PRODUCT = "9a0b1c2d-3333-4333-8333-333333333333"
SITE = "1f2e3d4c-5555-4555-8555-555555555555"
RUN = "3e2d1c0b-4444-4444-8444-444444444444"
NOW = datetime(2026, 11, 23, tzinfo=UTC)
READY_SITE = {"wp_admin_url": "https://blog.example", "wp_username": "ann", "wp_api_token": "sealed",
              "status": "active"}


@contextmanager
def no_transaction(*args):
    yield object()


class Recorder:
    """Stands for a module whose functions are only recorded (``audit``, ``store_schedules``)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda conn, *args, **kwargs: self.calls.append((name, *args))


@pytest.fixture
def principal():
    return Principal(tenant_id=TENANT, user_id="8b7a6c5d-6666-4666-8666-666666666666", role="member",
                     email="ann@example.com")


# ---------------------------------------------------------------- creating a run
@pytest.fixture
def product_with(monkeypatch):
    """Install a product (``generation.get_product``) on a site (``store_sites.site_credentials``) and fake
    run records; returns the runs created."""
    def install(site=READY_SITE, **product):
        created: list[dict] = []
        row = {"id": PRODUCT, "site_id": SITE, "image_style": "illustration", **product}

        class Sites:
            def site_credentials(self, conn, site_id):
                assert site_id == SITE
                return dict(site) if site else None

        class Runs:
            def create_run(self, conn, kind, config, created_by, steps_total):
                created.append({"kind": kind, "config": config, "created_by": created_by, "steps_total": steps_total})
                return {"id": RUN}

        monkeypatch.setattr(generation, "get_product", lambda conn, product_id: dict(row))
        monkeypatch.setattr(generation, "store_sites", Sites())
        monkeypatch.setattr(generation, "runs", Runs())
        monkeypatch.setattr(generation, "audit", Recorder())
        return created
    return install


@pytest.mark.parametrize("product, site, refusal", [
    ({"site_id": None}, READY_SITE, "the product has no WordPress site"),
    ({}, None, "has no application password"),
    ({}, {**READY_SITE, "wp_api_token": None}, "has no application password"),
    ({}, {**READY_SITE, "wp_username": None}, "has no application password"),
    ({}, {**READY_SITE, "status": "suspended"}, "is suspended"),
])
def test_a_product_that_cannot_publish_gets_no_run(product_with, principal, product, site, refusal):
    created = product_with(site=site, **product)
    with pytest.raises(ValidationFailed, match=refusal):
        generation.create_pipeline_run(object(), principal, PRODUCT, articles_count=2, publish_mode="draft")
    assert not created


@pytest.mark.parametrize("image_style, steps", [("illustration", 2 + 3 * 3 + 1), ("none", 2 + 3 * 2 + 1)])
def test_a_run_counts_its_steps_for_progress(product_with, principal, image_style, steps):
    """Analyze + plan, per article write (+ image) + publish, then finalize."""
    created = product_with(image_style=image_style)
    generation.create_pipeline_run(object(), principal, PRODUCT, articles_count=3, publish_mode="publish")
    [run] = created
    assert run["kind"] == "article_pipeline" and run["steps_total"] == steps
    assert run["config"] == {"product_id": PRODUCT, "site_id": SITE, "articles_count": 3, "publish_mode": "publish",
                             "with_images": image_style != "none", "schedule_job_id": None, "executions": 0}
    assert run["created_by"] == principal.user_id


def test_a_scheduled_run_has_no_user(product_with):
    created = product_with()
    generation.create_pipeline_run(object(), "schedule:s-1", PRODUCT, articles_count=1, publish_mode="draft",
                                   schedule_job_id="job-1")
    assert created[0]["created_by"] is None and created[0]["config"]["schedule_job_id"] == "job-1"


# ---------------------------------------------------------------- controlling a run
@pytest.fixture
def run_in(monkeypatch):
    """Install one article pipeline run (``runs.get_run`` / ``update_run``) started by a schedule's job; returns
    (run, the recorded ``store_schedules`` calls, the executions started)."""
    def install(status, kind="article_pipeline"):
        run = {"id": RUN, "kind": kind, "status": status, "current_step": None, "execution_arn": None,
               "config": {"schedule_job_id": "job-1"}, "steps_total": 5, "steps_done": 2, "error_message": None,
               "created_by": None, "created_at": NOW, "updated_at": NOW, "started_at": NOW, "finished_at": None}
        jobs, started = Recorder(), []

        class Runs:
            def get_run(self, conn, run_id, for_update=False):
                return dict(run)

            def update_run(self, conn, run_id, **changes):
                run.update(changes)
                return dict(run)

        monkeypatch.setattr(generation, "runs", Runs())
        monkeypatch.setattr(generation, "store_schedules", jobs)
        monkeypatch.setattr(generation, "audit", Recorder())
        monkeypatch.setattr(generation.limits, "check_subscription", lambda tenant_id: None)
        monkeypatch.setattr(generation.db, "tenant_transaction", no_transaction)
        monkeypatch.setattr(generation, "start_execution", lambda tenant_id, run_id: started.append(run_id) or run)
        return run, jobs.calls, started
    return install


def test_resuming_a_failed_run_starts_a_new_execution_and_reopens_its_job(run_in, principal):
    run, jobs, started = run_in("failed")
    generation.resume_run(principal, RUN)
    assert run["status"] == "pending" and started == [RUN]
    assert jobs == [("job_running_again", "job-1")]


def test_cancelling_a_run_fails_its_job(run_in, principal):
    run, jobs, started = run_in("running")
    generation.cancel_run(principal, RUN)
    assert run["status"] == "cancelled" and jobs == [("job_failed", "job-1", "cancelled")]


@pytest.mark.parametrize("action, status", [("resume_run", "running"), ("resume_run", "completed"),
                                            ("pause_run", "failed"), ("cancel_run", "completed"),
                                            ("cancel_run", "cancelled")])
def test_a_run_in_the_wrong_state_is_a_conflict(run_in, principal, action, status):
    run, jobs, started = run_in(status)
    with pytest.raises(Conflict):
        getattr(generation, action)(principal, RUN)
    assert run["status"] == status and not jobs and not started


def test_other_kinds_of_runs_are_not_controlled_here(run_in, principal):
    run_in("running", kind="outreach_send")
    with pytest.raises(Conflict, match="outreach_send"):
        generation.pause_run(principal, RUN)
