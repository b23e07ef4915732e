"""Community stats benchmark: the rollup of ``developer_stats`` / ``campaign_stats`` over 1,000,000 activities
(50,000 developers, skewed; 20 campaigns touched through UTM tags, resources and shortlinks, attribution rows for
the signups), full and then incremental after a realistic delta (1% new activities, a tenth of them late with an
old occurred_at, plus deletions and a merge), and the funnel query's p50 / p99 over the same 1,000,000 activities
(all developers, one campaign's, and a year's daily series).

Run: .venv/bin/python benchmarks/community_stats_bench.py [--activities 1000000] [--developers 50000]
      [--delta 0.01] [--requests 40]
Prints a table; nothing asserts on time (the incremental rollup is checked equal to a full recount). It starts
its own local runtime (PostgreSQL, moto) in a temporary directory and loads the rows with COPY (the t0006 triggers
fire, as on any write: the load logs its changes like an import would).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from funnel_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACTIONS = ["star", "fork", "comment", "attend", "click", "view", "issue", "pull_request", "download", "signup",
           "post", "api_call"]
START = datetime(2025, 1, 1, tzinfo=UTC)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def copy_activities(admin, tenant_id: str, n: int, world: dict, rng: random.Random, *, late_share: float = 0.0
                    ) -> float:
    """COPY ``n`` generated activities; returns the seconds it took."""
    owners = rng.choices(world["developers"], weights=world["weights"], k=n)
    t = time.perf_counter()
    with admin.cursor() as cur, cur.copy("COPY activities (tenant_id, developer_id, resource_id, action, occurred_at, "
                                         "source, metadata) FROM STDIN") as copy:
        for k, developer_id in enumerate(owners):
            link = rng.random()
            metadata, resource = None, None
            if link < 0.08:
                metadata = json.dumps({"utm_campaign": rng.choice(world["utm"])})
            elif link < 0.12:
                metadata = json.dumps({"shortlink_id": rng.choice(world["shortlinks"])})
            elif link < 0.20:
                resource = rng.choice(world["resources"])
            at = START + timedelta(seconds=rng.randrange(365 * 86400))
            if rng.random() < late_share:
                at -= timedelta(days=400)  # arrives now, happened long ago
            copy.write_row((tenant_id, developer_id if k % 20 else None, resource, ACTIONS[k % len(ACTIONS)], at,
                            "bench", metadata))
    return time.perf_counter() - t


def load(admin, tenant_id: str, developers: int, activities: int, rng: random.Random) -> dict:
    ids = [uuid.uuid4() for _ in range(developers)]
    with admin.cursor() as cur:
        with cur.copy("COPY developers (tenant_id, developer_id, display_name) FROM STDIN") as copy:
            for n, developer_id in enumerate(ids):
                copy.write_row((tenant_id, developer_id, f"Developer {n}"))
    campaigns = [uuid.uuid4() for _ in range(20)]
    for n, campaign_id in enumerate(campaigns):
        admin.execute("INSERT INTO campaigns (tenant_id, campaign_id, name, attributes) VALUES (%s, %s, %s, %s)",
                      (tenant_id, campaign_id, f"Campaign {n}", json.dumps({"utm_campaign": f"c{n}"})))
        admin.execute("INSERT INTO budgets (tenant_id, campaign_id, category, amount, spent_at) "
                      "VALUES (%s, %s, 'ad', %s, '2025-01-01')", (tenant_id, campaign_id, 10000 * (n + 1)))
    resources = [uuid.uuid4() for _ in range(50)]
    for n, resource_id in enumerate(resources):
        admin.execute("INSERT INTO resources (tenant_id, resource_id, category, campaign_id) VALUES (%s, %s, 'blog', "
                      "%s)", (tenant_id, resource_id, campaigns[n % 20] if n % 2 else None))
    shortlinks = [uuid.uuid4() for _ in range(20)]
    for n, shortlink_id in enumerate(shortlinks):
        admin.execute("INSERT INTO shortlinks (tenant_id, shortlink_id, key, target_url, campaign_id) "
                      "VALUES (%s, %s, %s, 'https://example.com/', %s)", (tenant_id, shortlink_id, f"bench{n}",
                                                                          campaigns[n]))
    world = {"developers": ids, "weights": [1 / (i + 1) ** 0.8 for i in range(len(ids))], "campaigns": campaigns,
             "utm": [f"c{n}" for n in range(20)] + ["Campaign 3", "unknown"], "resources": resources,
             "shortlinks": [str(s) for s in shortlinks]}
    world["load_seconds"] = copy_activities(admin, tenant_id, activities, world, rng)
    # attribution rows for a share of the signups (what a recomputation writes), spread over the campaigns
    admin.execute("INSERT INTO activity_campaigns (tenant_id, activity_id, campaign_id, weight) "
                  "SELECT a.tenant_id, a.activity_id, (%s::uuid[])[1 + abs(hashtext(a.activity_id::text)) %% 20], 1 "
                  "FROM activities a WHERE a.action = 'signup' AND a.developer_id IS NOT NULL "
                  "AND abs(hashtext(a.activity_id::text)) %% 4 = 0", (campaigns,))
    for table in ("developers", "activities", "activity_campaigns", "community_stats_changes"):
        admin.execute(f"ANALYZE {table}")
    return world


def rollup(tenant_id: str, *, full: bool = False) -> dict:
    """The tenant's rollup; when the runtime's own 5-minute schedule holds the tenant's lock, wait for it and roll
    up again (what it consumed shows in the change counts printed)."""
    from funnel import db
    from funnel.community import stats

    while (outcome := stats.rollup_tenant(tenant_id, full=full)) is None:
        with db.tenant_transaction(tenant_id) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('community.stats:' || "
                         "current_setting('app.tenant_id'), 0))")
    return outcome


def timed(tenant_id: str, call, requests: int) -> list[float]:
    from funnel import db

    out = []
    for _ in range(requests):
        with db.tenant_transaction(tenant_id) as conn:
            t = time.perf_counter()
            call(conn)
            out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--developers", type=int, default=50_000)
    parser.add_argument("--activities", type=int, default=1_000_000)
    parser.add_argument("--delta", type=float, default=0.01, help="new activities of the incremental run, a share")
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    from funnel import db
    from funnel.community import identity, stats
    from funnel.community import store_stats as store
    from funnel_dev.runtime import LocalRuntime
    from tests.support.tenants import new_tenant

    rng = random.Random(16)
    rows: list[tuple[str, str]] = [("load (uptime)", " ".join(f"{v:.2f}" for v in os.getloadavg()))]
    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=False) as runtime:
        tenant = new_tenant()
        tid = tenant.tenant_id
        record = db.directory.get(tid)
        dbname = record.database_url.rsplit("/", 1)[1].split("?")[0]
        with db.admin_connect(dbname) as admin:
            world = load(admin, tid, args.developers, args.activities, rng)
        with db.tenant_transaction(tid) as conn:
            logged = store.pending_changes(conn)
        rows.append(("data (COPY, triggers on)", f"{args.developers:,} developers, {args.activities:,} activities "
                                                 f"in {world['load_seconds']:.0f} s; {logged:,} change rows logged"))

        t = time.perf_counter()
        full = rollup(tid, full=True)
        full_seconds = time.perf_counter() - t
        rows.append(("rollup, full (1st)", f"{full_seconds:.2f} s: {full['developers_written']:,} developers, "
                                           f"{full['campaigns_written']} campaigns written"))
        t = time.perf_counter()
        rollup(tid, full=True)
        rows.append(("rollup, full again (nothing changed)", f"{time.perf_counter() - t:.2f} s"))
        t = time.perf_counter()
        rollup(tid)
        rows.append(("rollup, incremental, no changes", f"{(time.perf_counter() - t) * 1000:.0f} ms"))

        # the delta: 1% new activities (a tenth arriving late); then 1,000 deleted and one merge of two busy developers
        delta = int(args.activities * args.delta)
        with db.admin_connect(dbname) as admin:
            copy_seconds = copy_activities(admin, tid, delta, world, rng, late_share=0.1)
        t = time.perf_counter()
        incremental = rollup(tid)
        incremental_seconds = time.perf_counter() - t
        assert not incremental["was_full"]
        rows.append((f"rollup, incremental after {delta:,} new activities",
                     f"{incremental_seconds:.2f} s ({incremental['changes']:,} change rows, "
                     f"{incremental['developers_written']:,} developers, {incremental['campaigns_written']} "
                     f"campaigns written); their COPY took {copy_seconds:.1f} s"))
        with db.admin_connect(dbname) as admin:
            admin.execute("DELETE FROM activities WHERE activity_id IN (SELECT activity_id FROM activities "
                          "WHERE tenant_id = %s ORDER BY md5(activity_id::text) LIMIT 1000)", (tid,))
        with db.tenant_transaction(tid) as conn:
            identity.merge(conn, world["developers"][3], world["developers"][40], reason="bench", evidence=[],
                           merged_by=None)
        t = time.perf_counter()
        recounted = rollup(tid)
        rows.append(("rollup, incremental after 1,000 deletions and a merge (recounts)",
                     f"{time.perf_counter() - t:.2f} s ({recounted['changes']:,} change rows, "
                     f"{recounted['developers_written']:,} developers written)"))
        with db.tenant_transaction(tid) as conn:
            conn.execute("UPDATE campaigns SET name = 'Renamed 3' WHERE name = 'Campaign 3'")
        t = time.perf_counter()
        rollup(tid)
        rows.append(("rollup, incremental after a campaign rename (touches recounted)",
                     f"{time.perf_counter() - t:.2f} s"))
        t = time.perf_counter()
        with db.tenant_transaction(tid) as conn:
            equal = (store.stored_developer_stats(conn) == store.recomputed_developer_stats(conn)
                     and store.stored_campaign_stats(conn) == store.recomputed_campaign_stats(conn))
        rows.append(("incremental == full recount", f"{'yes' if equal else 'NO'} (compared in "
                                                    f"{time.perf_counter() - t:.1f} s)"))

        year = {"start": START, "end": START + timedelta(days=365)}
        funnel_all = timed(tid, lambda conn: stats.funnel(conn, **year, campaign_id=None), args.requests)
        campaign = world["campaigns"][5]
        funnel_campaign = timed(tid, lambda conn: stats.funnel(conn, **year, campaign_id=campaign), args.requests)
        month = {"start": START + timedelta(days=120), "end": START + timedelta(days=150)}
        funnel_month = timed(tid, lambda conn: stats.funnel(conn, **month, campaign_id=None), args.requests)
        series = timed(tid, lambda conn: stats.series(conn, **year, interval="day", tz="Asia/Tokyo", by="stage",
                                                      action=None, stage=None), args.requests)
        for label, timings in (("funnel, a year (all 1M activities)", funnel_all),
                               ("funnel, a month", funnel_month),
                               ("funnel, a year, one campaign's developers", funnel_campaign),
                               ("series, a year by day and stage, Asia/Tokyo", series)):
            rows.append((f"{label}, p50 / p99 ({args.requests} calls)",
                         f"{percentile(timings, 50) * 1000:.0f} / {percentile(timings, 99) * 1000:.0f} ms"))

        # what the triggers cost an import: the same COPY with the activities' insert trigger on and off
        with db.admin_connect(dbname) as admin:
            on = copy_activities(admin, tid, 100_000, world, rng)
            admin.execute("ALTER TABLE activities DISABLE TRIGGER activities_stats_inserted")
            off = copy_activities(admin, tid, 100_000, world, rng)
            admin.execute("ALTER TABLE activities ENABLE TRIGGER activities_stats_inserted")
        rows.append(("COPY of 100,000 activities, change-log trigger on / off",
                     f"{on:.1f} / {off:.1f} s ({100_000 / on:,.0f} / {100_000 / off:,.0f} rows/s)"))
        rows.append(("load (uptime) at the end", " ".join(f"{v:.2f}" for v in os.getloadavg())))
        del runtime

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  result")
    for label, value in rows:
        print(f"{label:{width}}  {value}")


if __name__ == "__main__":
    main()
