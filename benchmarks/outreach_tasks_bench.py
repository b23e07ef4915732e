"""Large send tasks: a task of 50,000 targets through the whole send pipeline (Step Functions -> S3 list of ids ->
Distributed Map -> SQS -> 2 browser worker threads -> results), with the browser replaced by an instant form
(tests/support/outreach.py: the pipeline is measured here, the form engine in forms_bench.py).

Run: .venv/bin/python benchmarks/outreach_tasks_bench.py [--targets 50000]
Prints the time to create the targets, to send them, the targets per minute and the largest state payload of the
execution's history (Step Functions' limit: 256 KB); nothing asserts on time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from funnel_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATE_LIMIT = 256 * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=50_000)
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for the task")
    args = parser.parse_args()

    import httpx

    from funnel import db
    from funnel.outreach import worker
    from funnel_dev.runtime import LocalRuntime
    from tests.e2e.outreach.conftest import MESSAGE, SENDER
    from tests.support.outreach import InstantForm, insert_pending_targets, largest_state_payload
    from tests.support.tenants import new_tenant

    worker._engine = lambda: InstantForm()  # type: ignore[assignment]  # the pipeline, not the browser, measured
    hosts = ["127.0.0.1", "localhost"]
    os.environ["FUNNEL_SSRF_ALLOW_HOSTS"] = ",".join(hosts)
    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=True, ssrf_allow_hosts=hosts) as runtime:
        tenant = new_tenant()
        api = httpx.Client(base_url=runtime.api_url, timeout=120)
        created = time.perf_counter()
        task = api.post("/v1/tasks", headers=tenant.headers, json={
            "name": "bench", "sender": SENDER, "message": MESSAGE, "urls": ["http://127.0.0.1/contact"],
            "recontact_days": 0}).json()
        insert_pending_targets(tenant, task["id"], args.targets - 1)
        create_seconds = time.perf_counter() - created
        started = time.perf_counter()
        api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers).raise_for_status()
        reported = 0.0
        current = task
        while True:
            try:
                answer = api.get(f"/v1/tasks/{task['id']}", headers=tenant.headers)
            except httpx.TransportError:  # a busy machine's API may time out now and then: ask again
                answer = None
            if answer is not None and answer.status_code == 200:
                current = answer.json()
            if current["status"] not in ("draft", "running") or time.perf_counter() - started > args.timeout:
                break
            if time.perf_counter() - reported >= 60:  # progress, for runs of hours
                reported = time.perf_counter()
                print(f"after {reported - started:.0f} s: {current['summary']}", file=sys.stderr, flush=True)
            time.sleep(1.0)
        elapsed = time.perf_counter() - started
        with db.tenant_transaction(tenant.tenant_id) as conn:
            arn = conn.execute("SELECT r.execution_arn FROM runs r JOIN tasks t ON t.run_id = r.id WHERE t.id = %s",
                               (task["id"],)).fetchone()["execution_arn"]
        sfn = runtime.client("stepfunctions")
        largest, kind = largest_state_payload(sfn, arn)
        execution = sfn.describe_execution(executionArn=arn)
        if current["status"] != "completed":
            events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"][-4:]
            print(json.dumps(events[:4], default=str)[:4000])
    submitted = current["summary"].get("submitted", 0)
    timed_out = current["status"] == "running"
    rows = [
        (f"targets inserted (one statement, {args.targets} rows)", f"{create_seconds:.1f} s"),
        (f"send task of {args.targets} targets, 2 worker threads (instant form)",
         f"{elapsed:.1f} s" + (" (stopped: --timeout reached)" if timed_out else "")),
        ("task status / execution status", f"{current['status']} / {execution['status']}"),
        ("targets submitted", f"{submitted} / {args.targets}"),
        ("targets per minute", f"{60 * submitted / elapsed:.0f}"),
        ("largest state payload in the history", f"{largest} bytes ({kind}); limit {STATE_LIMIT}"),
        ("load (uptime) at the end", os.popen("uptime").read().strip()),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  result")
    for label, value in rows:
        print(f"{label:{width}}  {value}")


if __name__ == "__main__":
    main()
