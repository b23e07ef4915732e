"""A schedule's firing (``schedules.fire``) over an in-memory fake of ``store_schedules``: one job and one run per
occurrence (a redelivered or duplicate firing starts nothing), the next run moves on to the following occurrence,
an inactive or deleted schedule fires nothing, and a run that cannot be created leaves a failed job. No database:
the fake holds the schedules and the jobs (unique on schedule id + scheduled time, like the table)."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from funnel.content import schedules
from funnel.platform.errors import NotFound, ValidationFailed

TENANT = "7d1f3f2e-0000-4000-8000-000000000000"
SCHEDULE = "5c1d0a7e-1111-4111-8111-111111111111"
PRODUCT = "9a0b1c2d-3333-4333-8333-333333333333"
DAILY_9_TOKYO = {"cron_expression": "0 9 * * *", "timezone": "Asia/Tokyo"}
OCCURRENCE = "2026-11-23T00:00:00Z"  # 09:00 in Tokyo


class FakeConn:
    @contextmanager
    def transaction(self):  # the savepoint around the run's creation
        yield self


class FakeScheduleStore:
    """The ``store_schedules`` functions ``fire`` calls, over ``schedules`` and ``jobs``."""

    def __init__(self, **schedule):
        self.schedules = {SCHEDULE: {"id": SCHEDULE, "product_id": PRODUCT, "is_active": True, "articles_per_run": 2,
                                     "publish_mode": "draft", "next_run_at": None, **DAILY_9_TOKYO, **schedule}}
        self.jobs: dict[tuple[str, datetime], dict] = {}

    def get_schedule(self, conn, schedule_id, *, for_update=False):
        row = self.schedules.get(schedule_id)
        return dict(row) if row else None

    def insert_job(self, conn, schedule_id, scheduled_for):
        if (schedule_id, scheduled_for) in self.jobs:  # ON CONFLICT DO NOTHING
            return None
        job = {"id": f"job-{len(self.jobs) + 1}", "schedule_id": schedule_id, "scheduled_for": scheduled_for,
               "status": "queued", "run_id": None, "error_message": None}
        self.jobs[(schedule_id, scheduled_for)] = job
        return dict(job)

    def _job(self, job_id):
        return next(job for job in self.jobs.values() if job["id"] == job_id)

    def set_next_run(self, conn, schedule_id, next_run_at):
        self.schedules[schedule_id]["next_run_at"] = next_run_at

    def job_started(self, conn, job_id, run_id):
        self._job(job_id).update(status="running", run_id=run_id)

    def job_failed(self, conn, job_id, error_message):
        self._job(job_id).update(status="failed", error_message=error_message)


class FakeGeneration:
    """``generation.create_pipeline_run`` / ``start_execution``: records the runs created and started."""

    def __init__(self, refuse: Exception | None = None):
        self.refuse = refuse
        self.created: list[dict] = []
        self.started: list[str] = []

    def take_articles(self, conn, tenant_id, articles_count):  # billing's gate: tests/integration/billing
        pass

    def create_pipeline_run(self, conn, principal, product_id, *, articles_count, publish_mode, schedule_job_id):
        if self.refuse:
            raise self.refuse
        run = {"id": f"run-{len(self.created) + 1}", "principal": principal, "product_id": product_id,
               "articles_count": articles_count, "publish_mode": publish_mode, "schedule_job_id": schedule_job_id}
        self.created.append(run)
        return run

    def start_execution(self, tenant_id, run_id):
        self.started.append(run_id)


@pytest.fixture
def fake(monkeypatch):
    """Install the fakes (and a transaction that opens nothing); returns (store, generation)."""
    def install(refuse=None, tenant_known=True, **schedule):
        store, generation = FakeScheduleStore(**schedule), FakeGeneration(refuse)

        @contextmanager
        def transaction(tenant_id):
            if not tenant_known:
                raise NotFound("tenant not found")
            yield FakeConn()

        monkeypatch.setattr(schedules, "store_schedules", store)
        monkeypatch.setattr(schedules, "generation", generation)
        monkeypatch.setattr(schedules.db, "tenant_transaction", transaction)
        return store, generation
    return install


def test_a_firing_starts_one_run_for_its_occurrence(fake):
    store, generation = fake()
    before = datetime.now(UTC)
    result = schedules.fire(TENANT, SCHEDULE, OCCURRENCE)
    assert result == {"status": "started", "job_id": "job-1", "run_id": "run-1",
                      "scheduled_for": "2026-11-23T00:00:00+00:00"}
    assert generation.created == [{"id": "run-1", "principal": f"schedule:{SCHEDULE}", "product_id": PRODUCT,
                                   "articles_count": 2, "publish_mode": "draft", "schedule_job_id": "job-1"}]
    assert generation.started == ["run-1"]
    [job] = store.jobs.values()
    assert job["status"] == "running" and job["run_id"] == "run-1"
    next_run = store.schedules[SCHEDULE]["next_run_at"]  # the next 09:00 in Tokyo after now
    assert next_run == schedules.next_run_at("0 9 * * *", "Asia/Tokyo", before) and next_run > before
    assert next_run.astimezone(schedules.ZoneInfo("Asia/Tokyo")).hour == 9


def test_the_same_occurrence_does_not_fire_twice(fake):
    store, generation = fake()
    schedules.fire(TENANT, SCHEDULE, OCCURRENCE)
    again = schedules.fire(TENANT, SCHEDULE, OCCURRENCE)  # EventBridge delivers at least once
    assert again == {"status": "duplicate", "scheduled_for": "2026-11-23T00:00:00+00:00"}
    assert len(store.jobs) == 1 and generation.started == ["run-1"]


def test_a_firing_without_a_scheduled_time_stands_for_the_latest_occurrence(fake):
    """The local ticker passes the unsubstituted placeholder (or nothing): both firings are the same occurrence."""
    store, generation = fake(cron_expression="0 0 1 1 *", timezone="UTC")  # yearly: stable while the test runs
    first = schedules.fire(TENANT, SCHEDULE, "<aws.scheduler.scheduled-time>")
    second = schedules.fire(TENANT, SCHEDULE, None)
    assert first["status"] == "started" and second["status"] == "duplicate"
    assert first["scheduled_for"] == second["scheduled_for"] == f"{datetime.now(UTC).year}-01-01T00:00:00+00:00"
    assert generation.started == ["run-1"]


def test_the_next_occurrence_fires_again(fake):
    store, generation = fake()
    schedules.fire(TENANT, SCHEDULE, OCCURRENCE)
    assert schedules.fire(TENANT, SCHEDULE, "2026-11-24T00:00:00Z")["status"] == "started"
    assert generation.started == ["run-1", "run-2"] and len(store.jobs) == 2


@pytest.mark.parametrize("state", ["inactive", "deleted"])
def test_an_inactive_or_deleted_schedule_fires_nothing(fake, state):
    store, generation = fake(is_active=False)
    if state == "deleted":
        store.schedules.clear()
    assert schedules.fire(TENANT, SCHEDULE, OCCURRENCE) == {"status": "ignored"}
    assert not store.jobs and not generation.created


def test_a_firing_for_a_deleted_tenant_is_ignored(fake):
    store, generation = fake(tenant_known=False)
    assert schedules.fire(TENANT, SCHEDULE, OCCURRENCE) == {"status": "ignored"}
    assert not generation.created


def test_a_run_that_cannot_be_created_leaves_a_failed_job(fake):
    store, generation = fake(refuse=ValidationFailed("the product's WordPress site is suspended"))
    result = schedules.fire(TENANT, SCHEDULE, OCCURRENCE)
    assert result == {"status": "failed", "job_id": "job-1", "error": "the product's WordPress site is suspended"}
    [job] = store.jobs.values()
    assert job["status"] == "failed" and job["error_message"] == "the product's WordPress site is suspended"
    assert not generation.started
    assert schedules.fire(TENANT, SCHEDULE, OCCURRENCE)["status"] == "duplicate"  # the failed one is not retried


@pytest.mark.parametrize("given, expected", [
    ("2026-11-23T00:00:00Z", datetime(2026, 11, 23, tzinfo=UTC)),
    ("2026-11-23T09:00:00+09:00", datetime(2026, 11, 23, tzinfo=UTC)),
    ("2026-11-23T00:00:00", datetime(2026, 11, 23, tzinfo=UTC)),  # naive: UTC, as EventBridge sends it
])
def test_the_scheduled_time_is_the_occurrence(given, expected):
    assert schedules.scheduled_for(given, DAILY_9_TOKYO) == expected


def test_the_next_run_is_strictly_after_an_occurrence():
    occurrence = datetime(2026, 11, 23, tzinfo=UTC)  # 09:00 in Tokyo: due now, so the next is tomorrow's
    assert schedules.next_run_at("0 9 * * *", "Asia/Tokyo", occurrence) == datetime(2026, 11, 24, tzinfo=UTC)
    assert schedules.next_run_at("0 9 * * *", "Asia/Tokyo", occurrence.replace(second=1)) == \
        datetime(2026, 11, 24, tzinfo=UTC)
    just_before = datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC)
    assert schedules.next_run_at("0 9 * * *", "Asia/Tokyo", just_before) == occurrence
