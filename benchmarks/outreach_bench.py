"""Outreach benchmark: targets per minute through the whole send pipeline (Step Functions ->
SQS -> 2 browser worker threads with real Chromium -> local company sites), end to end.

Run: .venv/bin/python benchmarks/outreach_bench.py [--targets 20]
Prints a table; nothing asserts on time. (Time per form with a warm browser: forms_bench.py.)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from funnel_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=20)
    args = parser.parse_args()


    from funnel_dev.runtime import LocalRuntime
    from tests.e2e.outreach.conftest import MESSAGE, SENDER
    from tests.support.contact_sites import ContactSite
    from tests.support.tenants import new_tenant

    sites = [ContactSite(f"127.0.0.{40 + i}").start() for i in range(args.targets)]
    hosts = ["127.0.0.1", "localhost", *(s.host for s in sites)]
    os.environ["FUNNEL_SSRF_ALLOW_HOSTS"] = ",".join(hosts)
    try:
        with tempfile.TemporaryDirectory() as state, LocalRuntime(
                Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
                tuned_for_tests=True, ssrf_allow_hosts=hosts) as runtime:
            tenant = new_tenant()
            from tests.support.gateway_client import gateway_client

            api = gateway_client(runtime.api_url, timeout=60)
            task = api.post("/v1/tasks", headers=tenant.headers, json={
                "name": "bench", "sender": SENDER, "message": MESSAGE, "urls": [s.url for s in sites]}).json()
            started = time.perf_counter()
            api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers).raise_for_status()
            while True:
                current = api.get(f"/v1/tasks/{task['id']}", headers=tenant.headers).json()
                if current["status"] != "running":
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
    finally:
        for site in sites:
            site.stop()
    submitted = current["summary"].get("submitted", 0)
    rows = [
        (f"send task of {args.targets} targets, 2 browser workers (incl. browser start)", f"{elapsed:.1f} s"),
        ("targets submitted", f"{submitted} / {args.targets}"),
        ("targets per minute", f"{60 * submitted / elapsed:.0f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  result")
    for label, value in rows:
        print(f"{label:{width}}  {value}")


if __name__ == "__main__":
    main()
