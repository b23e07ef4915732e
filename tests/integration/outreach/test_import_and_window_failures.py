"""Bad CSV cells and bad send windows through the API against real PostgreSQL: never a 500, never a job left
running; a 422 names the field or line, a background import ends with every row it did not import named and its
owner told."""
from __future__ import annotations

import pytest

from tests.support.outreach import SENDER, finished_import_job, import_csv
from tests.support.tenants import new_tenant, row_count

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def tenant(runtime):
    return new_tenant()


def _rows(prefix: str, count: int, bad: dict[int, str]) -> bytes:
    """``count`` data rows; ``bad`` maps a line number (the header is line 1) to that row's company cell."""
    lines = ["company_name,url"] + [f"{bad.get(n, f'{prefix} {n}')},https://{prefix}{n}.example.jp/"
                                    for n in range(2, count + 2)]
    return "\n".join(lines).encode()


def test_a_nul_in_a_cell_of_a_small_file_rejects_that_row_only(api, tenant):
    answer = import_csv(api, tenant, _rows("nulsync", 3, {3: "Null\x00Corp"}))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["imported"], body["rejected"]) == ("completed", 2, 1)
    assert body["report"] == [{"row": 3, "status": "rejected", "reason": "company_name contains a NUL character"}]


def test_a_200_kb_cell_refuses_the_file_naming_the_line_and_imports_nothing(api, tenant):
    before = (row_count(tenant, "contacts"), row_count(tenant, "import_jobs"))
    for rows in (3, 1_200):  # a small file, and one that would have been a background job
        answer = import_csv(api, tenant, _rows(f"huge{rows}-", rows, {3: "x" * 200_000}))
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert "line 3" in answer.json()["detail"]
        assert answer.json()["errors"][0]["loc"] == ["body", "line", 3]
    assert (row_count(tenant, "contacts"), row_count(tenant, "import_jobs")) == before


def test_a_background_import_with_a_nul_in_row_1101_completes_naming_the_row_and_tells_its_owner(api, tenant):
    started = import_csv(api, tenant, _rows("nulbg", 1_200, {1_101: "Broken\x00Row"}))
    assert started.status_code == 200 and started.json()["status"] == "pending", started.text
    job_id = started.json()["import_job_id"]
    job = finished_import_job(api, tenant, job_id)
    assert (job["status"], job["progress"], job["imported"], job["rejected"]) == ("completed", 100, 1_199, 1)
    assert job["report"] == [{"row": 1_101, "status": "rejected", "reason": "company_name contains a NUL character"}]
    inbox = api.get("/v1/notifications", headers=tenant.headers, params={"category": "outreach.import"}).json()
    assert [n["title"] for n in inbox["items"]] == ["Contact import finished: 1199 of 1200 rows imported"]


@pytest.mark.parametrize(("window", "loc"), [
    ({"days": [99]}, ["body", "send_window", "days", 0]),
    ({"days": [-1]}, ["body", "send_window", "days", 0]),
    ({"start": "99:99"}, ["body", "send_window", "start"]),
    ({"end": "24:00"}, ["body", "send_window", "end"]),
    ({"timezone": "Mars/Olympus"}, ["body", "send_window", "timezone"]),
    ({"timezone": "../../etc/passwd"}, ["body", "send_window", "timezone"]),
])
def test_a_send_window_outside_the_week_the_clock_or_the_time_zones_is_a_422_naming_the_field(
        api, tenant, window, loc):
    before = row_count(tenant, "tasks")
    answer = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": "window", "sender": SENDER, "message": "hello", "urls": ["http://127.0.0.1/contact"],
        "send_window": window})
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [loc]
    assert row_count(tenant, "tasks") == before


def test_a_send_window_within_bounds_is_accepted(api, tenant):
    window = {"days": [0, 6], "start": "00:00", "end": "23:59", "timezone": "Europe/London"}
    answer = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": "window ok", "sender": SENDER, "message": "hello", "urls": ["http://127.0.0.1/contact"],
        "send_window": window})
    assert answer.status_code == 201, answer.text
    assert answer.json()["settings"]["send_window"] == window
