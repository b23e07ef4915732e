"""Community identity benchmark: resolving 100,000 generated accounts through ``identity.resolve_in_chunks`` (the
code every ingest path uses) into a scratch tenant database on a local PostgreSQL.

Run: .venv/bin/python benchmarks/community_identity_bench.py [--accounts 100000] [--chunk 5000] [--profile]
     [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

The accounts come from tests/fixtures/community/make_cases.py (every kind of case: e-mails in every dressing,
Gmail variants, GitHub noreply commits, Japanese names in every script, colleagues, role addresses, bots...),
so certain links, shared identifiers and name suggestions all happen at scale. Prints time, accounts/s (overall,
and of the first and the last fifth of the run: whether resolution slows down as the tenant's accounts grow), peak
RSS and what came out; ``--profile`` adds the top of a cProfile of the run. Nothing asserts on time.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(chunks: list[tuple[int, float]]) -> float:
    return sum(n for n, _ in chunks) / sum(seconds for _, seconds in chunks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--database-url", help="owner URL of a PostgreSQL server (default: start a temporary one)")
    args = parser.parse_args()

    from funnel.community import identity
    from funnel_dev.community import scratch_tenant, server
    from tests.fixtures.community.make_cases import generate

    per_kind = max(1, round(args.accounts / 26.5))  # the generator makes about 26.5 accounts per kind and count
    cases = generate(per_kind, args.seed)
    lines = cases.accounts[: args.accounts]
    accounts = [identity.AccountIn(provider=a["provider"], external_user_id=a["external_user_id"],
                                   handle=a["handle"], email=a["email"], display_name=a["display_name"],
                                   org=a["org"], profile_url=a["profile_url"], attributes=a["attributes"])
                for a in lines]
    rss_before = _rss_mib()
    with server(args.database_url) as admin_url, scratch_tenant(admin_url) as conn:
        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        chunks: list[tuple[int, float]] = []  # the chunks resolve_in_chunks makes, timed one by one
        for start in range(0, len(accounts), args.chunk):
            chunk_started = time.perf_counter()
            batch = accounts[start:start + args.chunk]
            identity.resolve_accounts(conn, batch)
            chunks.append((len(batch), time.perf_counter() - chunk_started))
        resolved = len(accounts)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
        developers = len(identity.developers_with_accounts(conn))
        suggestions = len(identity.open_suggestions(conn))
    rss_after = _rss_mib()
    fifth = max(1, len(chunks) // 5)  # a fifth of the run at each end: how the rate falls as accounts grow
    rows = [
        (f"identity resolution of {resolved:,} accounts (chunks of {args.chunk:,})", f"{elapsed:.1f} s"),
        ("accounts per second", f"{resolved / elapsed:,.0f}"),
        (f"accounts per second, first / last {fifth} chunks", f"{_rate(chunks[:fifth]):,.0f} / "
                                                          f"{_rate(chunks[-fifth:]):,.0f}"),
        ("developers / open suggestions", f"{developers:,} / {suggestions:,}"),
        ("peak RSS of the process (generated input included)", f"{rss_after:,.0f} MiB"),
        ("peak RSS before resolving (input generated)", f"{rss_before:,.0f} MiB"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())


if __name__ == "__main__":
    main()
