"""Notifications benchmarks: inbox list latency for a user with 100,000 notifications, and the
delivery worker's throughput against a local webhook receiver (through the local runtime).

Run: .venv/bin/python benchmarks/notifications_bench.py [--rows 100000] [--requests 300] [--deliveries 300]
Prints a table; nothing asserts on time.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from funnel.local.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--deliveries", type=int, default=300)
    args = parser.parse_args()

    from funnel import db
    from funnel.local.runtime import LocalRuntime
    from funnel.notifications import service
    from funnel.platform import tenants
    from funnel.platform.principal import Principal
    from tests.support.receivers import Receiver
    from tests.support.tenants import new_tenant

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=True, ssrf_allow_hosts=["127.0.0.1"]) as runtime:
        handle = new_tenant()
        principal = Principal(handle.tenant_id, handle.owner_id, "owner")
        with db.tenant_transaction(handle.tenant_id) as conn:
            conn.execute(
                "INSERT INTO notifications (recipient_id, notification_id, title, notification_category, "
                "priority_level, read_status, read_at, delivery_status, sent_at, delivered_at, created_at) "
                "SELECT %s, 'bench_' || g, 'Notification ' || g, (ARRAY['system','billing','content.run'])[1 + g %% 3], "
                "(ARRAY['LOW','NORMAL','HIGH'])[1 + g %% 3], CASE WHEN g %% 4 = 0 THEN 'READ' ELSE 'UNREAD' END, "
                "CASE WHEN g %% 4 = 0 THEN now() END, 'DELIVERED', now() - interval '1 day', now() - interval '1 day', "
                "now() - make_interval(secs => g) FROM generate_series(1, %s) AS g", (handle.owner_id, args.rows))
        with db.admin_connect(db.database_name(tenants.directory.get(handle.tenant_id).database_url)) as admin:
            admin.execute("ANALYZE notifications")  # as the owner: the app role may not (autovacuum does in production)
        for label, filters in (("inbox first page (50)", {}), ("inbox unread only", {"read_status": "UNREAD"}),
                               ("inbox by category", {"category": "billing"})):
            timings = []
            for i in range(args.requests + 20):
                started = time.perf_counter()
                with db.tenant_transaction(handle.tenant_id) as conn:
                    service.inbox(conn, principal, read_status=filters.get("read_status"),
                                  category=filters.get("category"), priority=None, cursor=None, limit=50)
                if i >= 20:
                    timings.append((time.perf_counter() - started) * 1000)
            rows.append((f"{label}, {args.rows:,} rows: p50 / p99",
                         f"{statistics.median(timings):.2f} / {percentile(timings, 99):.2f} ms"))
        timings = []
        for _ in range(args.requests):
            started = time.perf_counter()
            with db.tenant_transaction(handle.tenant_id) as conn:
                service.unread_count(conn, principal)
            timings.append((time.perf_counter() - started) * 1000)
        rows.append(("unread count: p50 / p99", f"{statistics.median(timings):.2f} / {percentile(timings, 99):.2f} ms"))

        with Receiver() as endpoint:
            import httpx  # the runtime's pollers deliver; the receiver records what arrives

            httpx.put(f"{runtime.api_url}/v1/notification-channels/WEBHOOK", headers=handle.headers,
                      json={"url": endpoint.url}).raise_for_status()
            service.notify(handle.tenant_id, recipient_user_ids=[handle.owner_id], category="system",
                           title="warm-up", channels=("WEBHOOK",))
            while len(endpoint.requests) < 1:
                time.sleep(0.01)
            started = time.perf_counter()
            for _ in range(args.deliveries):
                service.notify(handle.tenant_id, recipient_user_ids=[handle.owner_id], category="system",
                               title="throughput", channels=("WEBHOOK",))
            while len(endpoint.requests) < args.deliveries + 1 and time.perf_counter() - started < 300:
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            rows.append((f"delivery worker: {len(endpoint.requests) - 1} signed webhooks (notify -> receiver)",
                         f"{(len(endpoint.requests) - 1) / elapsed:.0f} /s"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  result")
    for label, value in rows:
        print(f"{label:{width}}  {value}")


if __name__ == "__main__":
    main()
