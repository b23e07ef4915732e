"""One identity across the product: what the community touch costs the e-mail click redirect, and how fast the
touches consumer records them.

The click redirect (functions/email_tracking, called in-process like benchmarks/email_bench.py's pixel) is timed
warm with the touch queued (``funnel.community.touches.send`` to the local runtime's SQS) and without it (the
queue URL unset: the redirect as it was before touches), in alternating blocks of the same run so that the load of
the shared machine falls on both alike; a bare psycopg INSERT round trip is the yardstick. Then N queued touches
are recorded by the consumer's function (``crossarea.record``: resolution, consent, the activity).

Run: .venv/bin/python benchmarks/community_touches_bench.py [--requests 400] [--touches 500]
Prints a table; nothing asserts on time.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from funnel_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TRACKING = ROOT / "functions" / "email_tracking" / "app.py"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"
BLOCK = 50


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def figures(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {percentile(values, 99):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400, help="clicks timed with and without the touch, each")
    parser.add_argument("--touches", type=int, default=500, help="touches recorded by the consumer's function")
    parser.add_argument("--funnel-activities", type=int, default=1_000_000,
                        help="activities under the first-touch funnel query")
    parser.add_argument("--skip-clicks", action="store_true", help="only the funnel query")
    args = parser.parse_args()

    from funnel import db
    from funnel.community import crossarea
    from funnel.community.touches import EmailClick
    from funnel.email import tokens
    from funnel.settings import get_settings
    from funnel_dev.runtime import LocalRuntime
    from tests.support.tenants import new_tenant

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=True):
        handle = new_tenant()
        with db.tenant_transaction(handle.tenant_id) as conn:
            campaign = conn.execute(
                "INSERT INTO email_campaigns (name, subject, body, from_name, from_address, sender_identity) "
                "VALUES ('bench', 'bench', 'https://docs.example.com/a.pdf', 'Bench', 'bench@example.com', "
                "'Bench Inc. Tokyo') RETURNING id").fetchone()
            message = conn.execute("INSERT INTO email_messages (campaign_id, email, name, status, sent_at) VALUES "
                                   "(%s, 'reader@example.org', 'Reader', 'sent', now() - interval '1 hour') "
                                   "RETURNING id", (campaign["id"],)).fetchone()
        key = tokens.tracking_key()
        path = f"/t/c/{tokens.sign(key, 'c', handle.tenant_id, str(message['id']), 'https://docs.example.com/a.pdf')}"
        spec = importlib.util.spec_from_file_location("tracking_bench", TRACKING)
        tracking = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tracking)

        def click() -> float:
            event = {"rawPath": path, "requestContext": {"requestId": uuid.uuid4().hex, "http": {
                "method": "GET", "sourceIp": "198.51.100.7", "userAgent": BROWSER}}}
            started = time.perf_counter()
            answer = tracking.handler(event, None)
            assert answer["statusCode"] == 302
            return (time.perf_counter() - started) * 1000

        settings = get_settings()
        queue_url = settings.community_touches_queue_url
        assert queue_url, "the local runtime configures the touches queue"
        if args.skip_clicks:
            rows += funnel_rows(handle, args.funnel_activities)
            print_rows(rows)
            return
        for _ in range(20):  # warm: the SQS client, the connection pool, the modules of the first click
            click()
        with_touch: list[float] = []
        without: list[float] = []
        while len(with_touch) < args.requests:
            settings.community_touches_queue_url = queue_url
            with_touch += [click() for _ in range(BLOCK)]
            settings.community_touches_queue_url = None
            without += [click() for _ in range(BLOCK)]
        settings.community_touches_queue_url = queue_url
        bare: list[float] = []
        for _ in range(args.requests):
            started = time.perf_counter()
            with db.tenant_transaction(handle.tenant_id) as conn:
                conn.execute("INSERT INTO email_events (email_message_id, type) VALUES (%s, 'delivery')",
                             (message["id"],))
            bare.append((time.perf_counter() - started) * 1000)
        rows.append((f"click redirect, warm, with its event INSERT, without the touch ({args.requests})",
                     figures(without)))
        rows.append((f"click redirect, warm, with its event INSERT and the touch queued ({args.requests})",
                     figures(with_touch)))
        rows.append(("  difference of the medians (the SQS SendMessage to the local runtime's moto)",
                     f"{statistics.median(with_touch) - statistics.median(without):+.2f} ms"))
        rows.append(("bare psycopg INSERT round trip (same transaction setup)", figures(bare)))
        from funnel.platform import aws

        sqs = aws.client("sqs")
        alone = []
        for _ in range(args.requests // 2):
            started = time.perf_counter()
            sqs.send_message(QueueUrl=settings.tracking_events_queue_url.replace("email-tracking-events",
                                                                                 "email-tracking-events-dlq"),
                             MessageBody="{}")
            alone.append((time.perf_counter() - started) * 1000)
        rows.append(("bare SQS SendMessage to the local runtime's moto (another queue, nobody polling it)",
                     figures(alone)))

        touches = [EmailClick(tenant_id=handle.tenant_id, touch_id=f"bench:{i}", occurred_at=datetime.now(UTC),
                              email=f"reader{i}@example{i % 50}.co.jp", name=f"Reader {i}",
                              email_campaign_id=campaign["id"], email_message_id=message["id"],
                              url="https://docs.example.com/a.pdf") for i in range(args.touches)]
        each = []
        started = time.perf_counter()
        for touch in touches:
            t = time.perf_counter()
            crossarea.record(touch)
            each.append((time.perf_counter() - t) * 1000)
        seconds = time.perf_counter() - started
        rows.append((f"consumer: {args.touches} e-mail click touches of new recipients (resolution + activity)",
                     f"{args.touches / seconds:.0f}/s, {figures(each)}"))
        again = []
        for touch in touches[:100]:
            t = time.perf_counter()
            assert crossarea.record(touch) == "duplicate"
            again.append((time.perf_counter() - t) * 1000)
        rows.append(("consumer: a redelivered touch (duplicate)", figures(again)))
        rows += funnel_rows(handle, args.funnel_activities)
    print_rows(rows)


# The funnel as it was before t0009_community (per live developer, a LATERAL probe of its own and its
# organization's earliest activity, and a DISTINCT over every adoption activity), timed beside the current one.
BEFORE_ROLLUP_FUNNEL = """
WITH first AS (SELECT d.developer_id, f.source, f.occurred_at FROM developers d
  CROSS JOIN LATERAL (SELECT t.source, t.occurred_at FROM (
    (SELECT a.source, a.occurred_at, a.activity_id FROM activities a WHERE a.developer_id = d.developer_id
     ORDER BY a.occurred_at, a.activity_id LIMIT 1)
    UNION ALL (SELECT a.source, a.occurred_at, a.activity_id FROM activities a
     WHERE d.org_id IS NOT NULL AND a.org_id = d.org_id AND a.developer_id IS NULL
     ORDER BY a.occurred_at, a.activity_id LIMIT 1)) t ORDER BY t.occurred_at, t.activity_id LIMIT 1) f
  WHERE d.merged_into IS NULL AND d.erased_at IS NULL),
adopted AS (SELECT DISTINCT developer_id FROM activities WHERE developer_id IS NOT NULL
  AND action = ANY(%(adoption)s::text[]))
SELECT CASE WHEN f.source = ANY(%(sources)s::text[]) THEN f.source ELSE 'other' END AS source,
count(*) AS touched, count(ad.developer_id) AS adopted
FROM first f LEFT JOIN adopted ad ON ad.developer_id = f.developer_id GROUP BY 1"""


def funnel_rows(handle, activities: int) -> list[tuple[str, str]]:
    """The first-touch funnel over ``activities`` activities of activities // 20 developers (a tenth of them in 500
    organizations, with an outreach form submission each), 10% adopted, sources mixed: the tenant's first (full)
    stats rollup, the funnel read from developer_stats, and the former per-request query in the same run (the same
    counts)."""
    from funnel import db
    from funnel.community import crossarea, stats

    developers = max(activities // 20, 1)
    started = time.perf_counter()
    with db.tenant_transaction(handle.tenant_id) as conn:
        conn.execute("INSERT INTO organizations (name, domain_primary) SELECT 'org ' || g, 'org' || g || '.example' "
                     "FROM generate_series(1, 500) g")
        conn.execute("INSERT INTO developers (org_id) SELECT CASE WHEN g %% 10 = 0 THEN (SELECT org_id FROM "
                     "organizations WHERE name = 'org ' || (g %% 500 + 1)) END FROM generate_series(1, %s) g",
                     (developers,))
        conn.execute("INSERT INTO activities (org_id, action, occurred_at, source, dedup_key) SELECT org_id, "
                     "'form_submission', now() - interval '400 days', 'outreach', 'bench:org:' || org_id "
                     "FROM organizations WHERE name LIKE 'org %'")
        conn.execute(
            "WITH d AS (SELECT developer_id, row_number() OVER () AS n FROM developers) "
            "INSERT INTO activities (developer_id, action, occurred_at, source, dedup_key) "
            "SELECT d.developer_id, CASE WHEN g = 19 AND d.n % 10 = 0 THEN 'signup' ELSE 'star' END, "
            "now() - (g || ' days')::interval - (d.n || ' seconds')::interval, "
            "(ARRAY['email', 'shortlink', 'github', 'csv', 'api'])[1 + (d.n + g) % 5], "
            "'bench:' || d.developer_id || ':' || g FROM d, generate_series(0, 19) g")
        conn.execute("ANALYZE activities")
        conn.execute("ANALYZE developers")
    loaded = time.perf_counter() - started
    while True:  # the local runtime's own 5-minute schedule may be rolling the tenant up: then wait and recount
        t = time.perf_counter()
        if stats.rollup_tenant(handle.tenant_id, full=True) is not None:
            break
        with db.tenant_transaction(handle.tenant_id) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('community.stats:' || "
                         "current_setting('app.tenant_id'), 0))")
    rolled_up = time.perf_counter() - t
    timings = []
    for _ in range(20):
        t = time.perf_counter()
        with db.tenant_transaction(handle.tenant_id) as conn:
            result = crossarea.first_touch_funnel(conn, touched_from=None, touched_to=None)
        timings.append((time.perf_counter() - t) * 1000)
    before = []
    for _ in range(5):
        t = time.perf_counter()
        with db.tenant_transaction(handle.tenant_id) as conn:
            old = {r["source"]: (r["touched"], r["adopted"]) for r in conn.execute(BEFORE_ROLLUP_FUNNEL, {
                "adoption": result["adoption_actions"],
                "sources": list(crossarea.FIRST_TOUCH_SOURCES)}).fetchall()}
        before.append((time.perf_counter() - t) * 1000)
    now = {s["source"]: (s["touched"], s["adopted"]) for s in result["sources"] if s["touched"]}
    assert old == now, (old, now)
    return [(f"first-touch funnel over {activities:,} activities of {developers:,} developers (loaded in "
             f"{loaded:.0f} s; {result['touched']:,} touched, {result['adopted']:,} adopted), 20 requests",
             figures(timings)),
            ("the same, the former per-request query (same counts), 5 requests", figures(before)),
            ("a full stats rollup of the tenant (with the first touches)", f"{rolled_up * 1000:,.0f} ms")]


def print_rows(rows: list[tuple[str, str]]) -> None:
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  result (p50 / p99)")
    for label, value in rows:
        print(f"{label:{width}}  {value}")


if __name__ == "__main__":
    main()
