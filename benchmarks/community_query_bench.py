"""Community query benchmark: developer search and the 360 profile through the service functions
(``funnel.community.developers.search`` / ``profile``) on a tenant database holding 100,000 developers (150,000
accounts with their identity match keys, 100,000 e-mail identifiers, 1,000 organizations) and 1,000,000
activities spread over them (skewed: a few developers have thousands), all loaded with COPY.

Run: .venv/bin/python benchmarks/community_query_bench.py [--developers 100000] [--activities 1000000]
      [--requests 300] [--explain]
Prints a table (p50 / p99 per query kind, each call in its own tenant transaction as a request makes it); nothing
asserts on time. It starts its own local runtime (PostgreSQL, moto) in a temporary directory.
"""
from __future__ import annotations

import argparse
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

FIRST = ["Haruto", "Yui", "Sota", "Aoi", "Ren", "Mei", "Alex", "Maria", "Wei", "Priya", "Lukas", "Sofia", "Omar",
         "Chen", "Emma", "Noah", "Liam", "Olivia", "Mateo", "Zara", "Kenji", "Hana", "Daiki", "Sakura"]
LAST = ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Nakamura", "Kobayashi", "Smith", "Garcia",
        "Mueller", "Rossi", "Kim", "Nguyen", "Patel", "Silva", "Novak", "Jensen", "Dubois", "Kowalski"]
KANJI = ["山田 太郎", "佐藤 花子", "鈴木 一郎", "高橋 健", "田中 恵子", "渡辺 翔太", "伊藤 美咲", "中村 大輔"]
ACTIONS = ["star", "fork", "comment", "attend", "click", "view", "issue", "pull_request", "download", "signup"]
PROVIDERS = ["github", "x", "discord", "connpass"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def load(admin, tenant_id: str, developers: int, activities: int, rng: random.Random) -> dict:
    """COPY the generated rows; returns what the queries pick from (names, e-mails, handles, ids)."""
    from funnel.community import matching

    start = datetime(2024, 1, 1, tzinfo=UTC)
    orgs = [(uuid.uuid4(), f"Company {n}", f"company{n}.example") for n in range(1000)]
    with admin.cursor() as cur, cur.copy("COPY organizations (tenant_id, org_id, name, domain_primary) "
                                         "FROM STDIN") as copy:
        for org_id, name, domain in orgs:
            copy.write_row((tenant_id, org_id, name, domain))
    picks: dict[str, list] = {"names": [], "emails": [], "handles": [], "ids": [], "kanji": []}
    dev_rows, account_rows, identifier_rows = [], [], []
    for n in range(developers):
        developer_id = uuid.uuid4()
        if n % 10 == 0:
            name = KANJI[n // 10 % len(KANJI)]
        else:
            name = f"{FIRST[n % len(FIRST)]} {LAST[n // len(FIRST) % len(LAST)]}{n}"
        email = f"dev{n}.{LAST[n % len(LAST)].lower()}@mail{n % 50}.example"
        org = orgs[n % len(orgs)][0] if n % 3 else None
        created = start + timedelta(seconds=n * 60)
        dev_rows.append((tenant_id, developer_id, name, email, org, "{champion}" if n % 100 == 0 else "{}", created))
        identifier_rows.append((tenant_id, developer_id, "email", matching.normalize_email(email).value))
        for k in range(1 if n % 2 else 2):
            provider = PROVIDERS[(n + k) % len(PROVIDERS)]
            handle = f"{FIRST[n % len(FIRST)].lower()}{LAST[n // len(FIRST) % len(LAST)].lower()}{n}{'x' * k}"
            profile = matching.profile(provider, f"{provider}-{n}-{k}", handle=handle, display_name=name)
            keys = "{" + ",".join('"' + key.replace('"', '') + '"' for key in matching.match_keys(profile)) + "}"
            account_rows.append((tenant_id, uuid.uuid4(), developer_id, provider, f"{provider}-{n}-{k}", handle,
                                 name, keys, created))
            if k == 0 and n % 97 == 0:
                picks["handles"].append(handle[: max(5, len(handle) - 3)])
        if n % 97 == 0:
            picks["names"].append(name.split()[1][:4] if n % 10 else name.split()[0])
            picks["emails"].append(email)
            picks["ids"].append(developer_id)
        if n % 10 == 0 and n % 7 == 0:
            picks["kanji"].append(("Yamada", "Tanaka", "Suzuki", "Sato")[n % 4])
    with admin.cursor() as cur:
        with cur.copy("COPY developers (tenant_id, developer_id, display_name, primary_email, org_id, tags, "
                      "created_at) FROM STDIN") as copy:
            for row in dev_rows:
                copy.write_row(row)
        with cur.copy("COPY accounts (tenant_id, account_id, developer_id, provider, external_user_id, handle, "
                      "display_name, match_keys, created_at) FROM STDIN") as copy:
            for row in account_rows:
                copy.write_row(row)
        with cur.copy("COPY developer_identifiers (tenant_id, developer_id, kind, value_normalized) "
                      "FROM STDIN") as copy:
            for row in identifier_rows:
                copy.write_row(row)
        # skewed: developer i gets weight 1/(i+1)^0.8 (a few very active, a long tail)
        ids = [row[1] for row in dev_rows]
        weights = [1 / (i + 1) ** 0.8 for i in range(len(ids))]
        owners = rng.choices(ids, weights=weights, k=activities)
        with cur.copy("COPY activities (tenant_id, developer_id, action, occurred_at, source, metadata) "
                      "FROM STDIN") as copy:
            for n, developer_id in enumerate(owners):
                copy.write_row((tenant_id, developer_id, ACTIONS[n % len(ACTIONS)],
                                start + timedelta(seconds=rng.randrange(365 * 86400)), "bench",
                                '{"repo": "acme/repo"}' if n % 5 == 0 else None))
    picks["heavy"] = ids[:5]
    for table in ("organizations", "developers", "accounts", "developer_identifiers", "developer_search_terms",
                  "activities"):
        admin.execute(f"ANALYZE {table}")
    return picks


def timed(tenant_id: str, call, values: list, requests: int) -> list[float]:
    from funnel import db

    out = []
    for n in range(requests):
        value = values[n % len(values)]
        with db.tenant_transaction(tenant_id) as conn:
            t = time.perf_counter()
            call(conn, value)
            out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--developers", type=int, default=100_000)
    parser.add_argument("--activities", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--explain", action="store_true", help="print the plans of one search of each kind")
    args = parser.parse_args()

    from funnel import db
    from funnel.community import developers
    from funnel_dev.runtime import LocalRuntime
    from tests.support.tenants import new_tenant

    rng = random.Random(15)
    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=False) as runtime:
        tenant = new_tenant()
        record = db.directory.get(tenant.tenant_id)
        dbname = record.database_url.rsplit("/", 1)[1].split("?")[0]
        loaded = time.perf_counter()
        with db.admin_connect(dbname) as admin:
            picks = load(admin, tenant.tenant_id, args.developers, args.activities, rng)
        loaded = time.perf_counter() - loaded

        def search_page(conn, value):
            return developers.search(conn, q=value, tag=None, org_id=None, include_erased=False, cursor=None,
                                     limit=50).items

        kinds = [("name prefix (4 letters, ~1/20 match) ", picks["names"]), ("romaji of a kanji name", picks["kanji"]),
                 ("whole e-mail address", picks["emails"]), ("handle (a part of it)", picks["handles"])]
        results = []
        for label, values in kinds:
            timings = timed(tenant.tenant_id, search_page, values, args.requests)
            results.append((f"search: {label}", timings))
        timings = timed(tenant.tenant_id, lambda conn, v: developers.search(
            conn, q=None, tag="champion", org_id=None, include_erased=False, cursor=None, limit=50),
            [None], args.requests)
        results.append(("search: tag only", timings))
        profile_ids = picks["ids"] + picks["heavy"]
        results.append(("360 profile (random developers)", timed(tenant.tenant_id, developers.profile,
                                                                  picks["ids"], args.requests)))
        results.append(("360 profile (the 5 most active)", timed(tenant.tenant_id, developers.profile,
                                                                  picks["heavy"], args.requests)))
        with db.tenant_transaction(tenant.tenant_id) as conn:
            hits = {label: len(search_page(conn, values[0])) for label, values in kinds}
            heaviest = conn.execute("SELECT count(*) AS n FROM activities WHERE developer_id = %s",
                                    (picks["heavy"][0],)).fetchone()["n"]
            if args.explain:
                original = conn.execute

                def explain(query, params=None, **kw):
                    if isinstance(query, str) and query.lstrip().startswith(("SELECT", "WITH")):
                        plan = original("EXPLAIN (ANALYZE, BUFFERS) " + query, params).fetchall()
                        print("\n".join(r["QUERY PLAN"] for r in plan), "\n")
                    return original(query, params, **kw)

                conn.execute = explain  # type: ignore[method-assign]
                for label, values in kinds:
                    print(f"--- {label}: {values[0]!r}")
                    search_page(conn, values[0])
                print("--- profile")
                developers.profile(conn, profile_ids[-1])
                conn.execute = original  # type: ignore[method-assign]
        del runtime

    rows = [("data (COPY, then ANALYZE)", f"{args.developers:,} developers, {args.activities:,} activities "
                                          f"({loaded:.0f} s); the most active developer has {heaviest:,}")]
    for label, timings in results:
        rows.append((f"{label}, p50 / p99",
                     f"{percentile(timings, 50) * 1000:.1f} / {percentile(timings, 99) * 1000:.1f} ms"))
    rows.append(("rows on the first page (name, romaji, e-mail, handle)", ", ".join(str(v) for v in hits.values())))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  result")
    for label, value in rows:
        print(f"{label:{width}}  {value}")


if __name__ == "__main__":
    main()
