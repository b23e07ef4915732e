"""Notifications benchmarks: inbox list latency for a user with 100,000 notifications, and the
delivery worker's throughput against a local webhook receiver (through the local runtime).

Run: .venv/bin/python benchmarks/notifications_bench.py [--rows 100000] [--requests 300] [--deliveries 300]
Prints a table; nothing asserts on time.

The inbox is timed in a separate process, as a Lambda would call it: the local runtime's own
process also runs moto, the gateway, the queue pollers and the scheduler, whose threads share
the GIL and would make the benchmark measure them. "server" is PostgreSQL's execution time
(EXPLAIN ANALYZE) of the same query: what the indexes decide, whatever the machine's load.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from funnel_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


INBOX_CASES = (("inbox first page (50)", {}), ("inbox unread only", {"read_status": "UNREAD"}),
               ("inbox by category (1/3 of rows)", {"category": "billing"}),
               ("inbox by rare category (0.1%)", {"category": "security"}),
               ("inbox by priority (1/3)", {"priority": "HIGH"}))


def measure_inbox(tenant_id: str, user_id: str, requests: int) -> list[tuple[str, str]]:
    """In a clean process: p50/p99 of the inbox's first page as the API calls it, and the server's share."""
    from funnel import db
    from funnel.notifications import service
    from funnel.platform.principal import Principal

    principal = Principal(tenant_id, user_id, "member")
    rows = []
    for label, filters in INBOX_CASES:
        timings = []
        for i in range(requests + 20):
            started = time.perf_counter()
            with db.tenant_transaction(tenant_id) as conn:
                service.inbox(conn, principal, read_status=filters.get("read_status"),
                              category=filters.get("category"), priority=filters.get("priority"), cursor=None,
                              limit=50)
            if i >= 20:  # warm-up: pool connections, plans
                timings.append((time.perf_counter() - started) * 1000)
        server = []
        with db.tenant_transaction(tenant_id) as conn:
            where, values = "", []
            if filters.get("read_status"):  # a literal, as service.inbox writes it
                where += f" AND read_status = '{filters['read_status']}'"
            for column, key in (("notification_category", "category"), ("priority_level", "priority")):
                if filters.get(key):
                    where, values = where + f" AND {column} = %s", [*values, filters[key]]
            for _ in range(50):
                plan = conn.execute(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT {service.COLUMNS} FROM notifications "
                    f"WHERE recipient_id = %s{where} AND {service.INBOX} ORDER BY created_at DESC, id DESC LIMIT 51",
                    (user_id, *values)).fetchone()
                server.append(next(iter(plan.values()))[0]["Execution Time"])
        rows.append((f"{label}: p50 / p99 (server p99)",
                     f"{statistics.median(timings):.2f} / {percentile(timings, 99):.2f} ms "
                     f"({percentile(server, 99):.2f} ms)"))
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        with db.tenant_transaction(tenant_id) as conn:
            service.unread_count(conn, principal)
        timings.append((time.perf_counter() - started) * 1000)
    rows.append(("unread count (capped at 1,000): p50 / p99",
                 f"{statistics.median(timings):.2f} / {percentile(timings, 99):.2f} ms"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--measure-inbox", nargs=2, metavar=("TENANT_ID", "USER_ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_inbox:  # the child process started below
        print(json.dumps(measure_inbox(*args.measure_inbox, args.requests)))
        return

    from funnel import db
    from funnel.notifications import service
    from funnel.platform import tenants
    from funnel_dev.runtime import LocalRuntime
    from tests.support.receivers import Receiver
    from tests.support.tenants import new_tenant

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=True, ssrf_allow_hosts=["127.0.0.1"]) as runtime:
        logging.getLogger("funnel").setLevel(logging.WARNING)  # one log line per delivery would drown the table
        handle = new_tenant()
        with db.tenant_transaction(handle.tenant_id) as conn:
            conn.execute(
                "INSERT INTO notifications (recipient_id, notification_id, title, notification_category, "
                "priority_level, read_status, read_at, delivery_status, sent_at, delivered_at, created_at) "
                "SELECT %s, 'bench_' || g, 'Notification ' || g, CASE WHEN g %% 1000 = 0 THEN 'security' "
                "ELSE (ARRAY['system','billing','content.run'])[1 + g %% 3] END, "
                "(ARRAY['LOW','NORMAL','HIGH'])[1 + g %% 3], CASE WHEN g %% 4 = 0 THEN 'READ' ELSE 'UNREAD' END, "
                "CASE WHEN g %% 4 = 0 THEN now() END, 'DELIVERED', now() - interval '1 day', now() - interval '1 day', "
                "now() - make_interval(secs => g) FROM generate_series(1, %s) AS g", (handle.owner_id, args.rows))
        with db.admin_connect(db.database_name(tenants.directory.get(handle.tenant_id).database_url)) as admin:
            admin.execute("ANALYZE notifications")  # as the owner: the app role may not (autovacuum does in production)
        child = subprocess.run([sys.executable, __file__, "--requests", str(args.requests), "--measure-inbox",
                                handle.tenant_id, handle.owner_id], capture_output=True, text=True, check=True)
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        rows += [(f"{label}, {args.rows:,} rows", value) if label.startswith("inbox") else (label, value)
                 for label, value in measured]

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
