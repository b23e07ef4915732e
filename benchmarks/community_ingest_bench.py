"""Community ingestion benchmark: a CSV of 1,000,000 activities (50,000 distinct accounts) through the import's
processing code (``funnel.community.imports.run_import``: S3 read, decode, row checks, account resolution per
chunk, COPY into staging, INSERT ... SELECT) into a tenant database, against a bare COPY of the same rows (the
ids as stored) into an equivalent table (the same columns, indexes, foreign keys and triggers) and into a table
without indexes or keys, in the same run; then the p99 of the activity list (first page, and a page filtered by
developer) over those 1,000,000 activities.

Run: .venv/bin/python benchmarks/community_ingest_bench.py [--rows 1000000] [--accounts 50000] [--chunk 20000]
      [--list-requests 300] [--metadata-share 0.2] [--suggestions on|off] [--profile] [--breakdown 200000]
Prints a table; nothing asserts on time. It starts its own local runtime (PostgreSQL, moto) in a temporary
directory.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

from funnel_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACTIONS = ["star", "fork", "comment", "attend", "click", "view", "issue", "pull_request", "download", "signup"]
COPY_COLUMNS = ("activity_id, developer_id, account_id, anon_id, resource_id, action, occurred_at, source, source_ref, "
                "category, group_key, metadata, dedup_key")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


SYLLABLES = ["ka", "ri", "to", "mu", "se", "na", "lo", "vi", "ren", "sha", "ko", "ta", "mi", "ra", "zu", "pe",
             "yo", "chi", "ba", "ne", "ho", "ki", "su", "da", "no", "me", "ru", "fa", "ji", "wa"]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables))


def generate_csv(rows: int, accounts: int, metadata_share: float, seed: int = 15) -> bytes:
    """``rows`` activities of ``accounts`` people, each with a login and a two-part name of their own (as real
    exports are: few share a name or a login stem, so identity compares few pairs)."""
    rng = random.Random(seed)
    people = [(f"{_word(rng, 3)}{rng.randrange(100)}", f"{_word(rng, 3).title()} {_word(rng, 3).title()}")
              for _ in range(accounts)]
    out = io.StringIO()
    out.write("occurred_at,action,provider,external_user_id,handle,display_name,resource_category,"
              "resource_external_id,resource_title,utm_source\n")
    for n in range(rows):
        user = rng.randrange(accounts)
        handle, name = people[user]
        second = rng.randrange(365 * 86400)
        day, rest = divmod(second, 86400)
        month, mday = 1 + day // 31 % 12, 1 + day % 28
        resource = rng.randrange(500)
        utm = f"src{rng.randrange(20)}" if rng.random() < metadata_share else ""
        out.write(f"2025-{month:02d}-{mday:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}Z,"
                  f"{ACTIONS[n % len(ACTIONS)]},github,{100000 + user},{handle},{name},repo,acme/repo{resource},"
                  f"Repo {resource},{utm}\n")
    return out.getvalue().encode()


def _server_cpu(postmaster_pid: int) -> float:
    """CPU seconds used so far by the benchmark's PostgreSQL (the postmaster's child processes that are alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster_pid:  # fields[1]: the parent pid; [11], [12]: user and system ticks
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# CPU seconds of the import's reading threads (imports._ReadAhead), each added when its thread ends.
READER_CPU = [0.0]


class CpuClock:
    """Wall seconds and CPU seconds of a phase: this thread's and the import's reading thread's (not the local
    runtime's own threads: its API server, queue pollers and moto run in this process too) and the database's
    processes'. On a shared machine the wall time grows with the other sessions' load, the CPU time much less."""

    def __init__(self, postmaster_pid: int) -> None:
        self.postmaster_pid = postmaster_pid

    def __enter__(self) -> CpuClock:
        self.wall, self.server = time.perf_counter(), _server_cpu(self.postmaster_pid)
        self.client = time.thread_time() + READER_CPU[0]
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.client = time.thread_time() + READER_CPU[0] - self.client
        self.server = _server_cpu(self.postmaster_pid) - self.server

    @property
    def cpu(self) -> float:
        return self.client + self.server

    def __str__(self) -> str:
        return f"wall {self.wall:.1f} s; CPU {self.cpu:.1f} s (client {self.client:.1f}, server {self.server:.1f})"


def _bare_copy(admin, table: str, payload: bytes, postmaster_pid: int) -> CpuClock:
    """The time to COPY ``payload`` into ``table`` in one transaction."""
    with CpuClock(postmaster_pid) as clock, admin.transaction(), admin.cursor() as cur, \
            cur.copy(f"COPY {table} (tenant_id, {COPY_COLUMNS}) FROM STDIN") as copy:
        for start in range(0, len(payload), 1 << 20):
            copy.write(payload[start:start + (1 << 20)])
    return clock


def _unnamed_index(definition: str) -> str:
    """``CREATE INDEX name ON public.activities USING ...`` as an unnamed index on the table ``{t}``."""
    return definition.split(" INDEX ", 1)[0] + " INDEX ON {t} " + definition.split(" ON public.activities ", 1)[1]


def _breakdown(admin, payload: bytes, rows: int, postmaster_pid: int) -> list[tuple[str, str]]:
    """COPY the first ``rows`` rows of ``payload`` into tables that add the activities table's parts one at a
    time; the rate of each, so the cost of each part is the drop from the one before."""
    lines = payload.split(b"\n")[:rows]
    sample = b"\n".join(lines) + b"\n"
    indexes = admin.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'activities' AND indexname NOT IN "
                            "(SELECT conname FROM pg_constraint WHERE conrelid = 'activities'::regclass)"
                            ).fetchall()
    keys = admin.execute("SELECT pg_get_constraintdef(oid) AS definition, contype FROM pg_constraint "
                         "WHERE conrelid = 'activities'::regclass AND contype IN ('p', 'u', 'f') ORDER BY conname"
                         ).fetchall()
    triggers = admin.execute("SELECT pg_get_triggerdef(oid) AS definition FROM pg_trigger "
                             "WHERE tgrelid = 'activities'::regclass AND NOT tgisinternal").fetchall()
    btree = [r["indexdef"] for r in indexes if " USING gin " not in r["indexdef"]]
    gin = [r["indexdef"] for r in indexes if " USING gin " in r["indexdef"]]
    steps: list[tuple[str, list[str]]] = [
        ("no index or key", []),
        ("+ primary key and unique keys", [f"ALTER TABLE {{t}} ADD {k['definition']}" for k in keys
                                           if k["contype"] != "f"]),
        (f"+ {len(btree)} btree indexes", [_unnamed_index(d) for d in btree]),
        ("+ GIN index on metadata", [_unnamed_index(d) for d in gin]),
        (f"+ {sum(k['contype'] == 'f' for k in keys)} foreign keys",
         [f"ALTER TABLE {{t}} ADD {k['definition']}" for k in keys if k["contype"] == "f"]),
        (f"+ {len(triggers)} triggers", [r["definition"].replace(" ON public.activities ", " ON {t} ")
                                         for r in triggers]),
    ]
    results, statements = [], []
    for n, (label, added) in enumerate(steps):
        statements += added
        table = f"activities_part_{n}"
        admin.execute(f"CREATE TABLE {table} (LIKE activities INCLUDING DEFAULTS)")
        for statement in statements:
            admin.execute(statement.replace("{t}", table))
        clock = _bare_copy(admin, table, sample, postmaster_pid)
        admin.execute(f"DROP TABLE {table}")
        results.append((f"breakdown, COPY of {len(lines):,} rows: {label}",
                        f"{len(lines) / clock.wall:,.0f} rows/s ({clock.wall * 1e6 / len(lines):.0f} us/row)"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--list-requests", type=int, default=300)
    parser.add_argument("--metadata-share", type=float, default=0.2)
    parser.add_argument("--profile", action="store_true", help="print the import's top functions (cProfile)")
    parser.add_argument("--suggestions", choices=("on", "off"), default="on",
                        help="off: resolution links and creates developers but skips the merge-suggestion refresh "
                             "(identity's cost, measured by its own benchmark), to time the ingestion itself")
    parser.add_argument("--breakdown", type=int, default=0, metavar="ROWS",
                        help="also COPY the first ROWS rows into tables that add the activities table's parts one "
                             "at a time (keys, btree indexes, GIN, foreign keys, triggers): what each part costs")
    args = parser.parse_args()
    load_before = f"{os.getloadavg()[0]:.2f}"

    from funnel import db
    from funnel.community import activities, imports, store_imports
    from funnel.platform import storage
    from funnel_dev.runtime import LocalRuntime
    from tests.support.tenants import new_tenant

    generated = time.perf_counter()
    data = generate_csv(args.rows, args.accounts, args.metadata_share)
    generated = time.perf_counter() - generated
    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=False) as runtime:
        # The runtime's schedules (the stats rollup every 5 minutes...) would run beside the import on the same two
        # cores, and not beside the bare COPY: they are stopped for the measurement.
        runtime._scheduler.stop()
        postmaster_pid = int((runtime.pg.data_dir / "postmaster.pid").read_text().split()[0])
        tenant = new_tenant()
        key = f"imports/{tenant.tenant_id}/activities/bench.csv"
        storage.put_bytes(key, data, "text/csv")
        with db.tenant_transaction(tenant.tenant_id) as conn:
            job = store_imports.insert_job(conn, tenant.owner_id, "utf-8", {"timezone": "UTC"})
            store_imports.set_job_file(conn, job["job_id"], key)

        resolving = [0.0]
        resolve_accounts = imports.identity.resolve_accounts

        def timed_resolution(*a, **k):
            t = time.perf_counter()
            try:
                return resolve_accounts(*a, **k)
            finally:
                resolving[0] += time.perf_counter() - t

        imports.identity.resolve_accounts = timed_resolution  # type: ignore[assignment]
        refresh_suggestions = imports.identity.refresh_suggestions
        if args.suggestions == "off":
            imports.identity.refresh_suggestions = lambda conn, developer_ids: None  # type: ignore[assignment]
        inserting = [0.0]
        insert_from_staging = store_imports.insert_from_staging

        def timed_insert(conn):
            t = time.perf_counter()
            try:
                return insert_from_staging(conn)
            finally:
                inserting[0] += time.perf_counter() - t

        store_imports.insert_from_staging = timed_insert  # type: ignore[assignment]
        fill = imports._ReadAhead._fill

        def timed_fill(self, chunks):
            try:
                fill(self, chunks)
            finally:
                READER_CPU[0] += time.thread_time()

        imports._ReadAhead._fill = timed_fill  # type: ignore[method-assign]
        profiler = cProfile.Profile() if args.profile else None
        with CpuClock(postmaster_pid) as import_clock:
            if profiler:
                profiler.enable()
            result = imports.run_import(tenant.tenant_id, str(job["job_id"]), chunk_rows=args.chunk)
            if profiler:
                profiler.disable()
        imported = import_clock.wall
        imports.identity.resolve_accounts = resolve_accounts  # type: ignore[assignment]
        imports.identity.refresh_suggestions = refresh_suggestions  # type: ignore[assignment]
        store_imports.insert_from_staging = insert_from_staging  # type: ignore[assignment]
        assert result["status"] == "completed", result

        # The bare COPY: the same rows (as the import stored them, ids resolved) into an equivalent table.
        record = db.directory.get(tenant.tenant_id)
        dbname = record.database_url.rsplit("/", 1)[1].split("?")[0]
        with db.admin_connect(dbname) as admin:
            dump = io.BytesIO()
            with admin.cursor() as cur, cur.copy(f"COPY (SELECT tenant_id, {COPY_COLUMNS} FROM activities "
                                                 f"ORDER BY activity_id) TO STDOUT") as copy:
                for block in copy:
                    dump.write(block)
            payload = dump.getvalue()
            admin.execute("CREATE TABLE activities_bare (LIKE activities INCLUDING ALL)")
            for row in admin.execute(
                    "SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint "
                    "WHERE conrelid = 'activities'::regclass AND contype = 'f' ORDER BY conname").fetchall():
                admin.execute(f"ALTER TABLE activities_bare ADD {row['definition']}")
            # and the same triggers (the stats change log's): they are part of what writing an activity costs
            for row in admin.execute(
                    "SELECT pg_get_triggerdef(oid) AS definition FROM pg_trigger "
                    "WHERE tgrelid = 'activities'::regclass AND NOT tgisinternal ORDER BY tgname").fetchall():
                admin.execute(row["definition"].replace(" ON public.activities ", " ON activities_bare "))
            bare_clock = _bare_copy(admin, "activities_bare", payload, postmaster_pid)
            admin.execute("CREATE TABLE activities_plain (LIKE activities INCLUDING DEFAULTS)")
            plain_clock = _bare_copy(admin, "activities_plain", payload, postmaster_pid)
            bare, plain = bare_clock.wall, plain_clock.wall
            admin.execute("DROP TABLE activities_bare, activities_plain")
            breakdown = _breakdown(admin, payload, args.breakdown, postmaster_pid) if args.breakdown else []
            admin.execute("ANALYZE activities")

        # The list's latency over the 1,000,000 activities, through the service function.
        with db.tenant_transaction(tenant.tenant_id) as conn:
            developers = [r["developer_id"] for r in conn.execute(
                "SELECT developer_id FROM developers ORDER BY random() LIMIT 200").fetchall()]
        first_page, by_developer, deeper = [], [], []
        rng = random.Random(7)
        for n in range(args.list_requests):
            with db.tenant_transaction(tenant.tenant_id) as conn:
                t = time.perf_counter()
                page = activities.list_activities(conn, limit=50)
                first_page.append(time.perf_counter() - t)
                t = time.perf_counter()
                activities.list_activities(conn, developer_id=rng.choice(developers), limit=50)
                by_developer.append(time.perf_counter() - t)
                t = time.perf_counter()
                activities.list_activities(conn, cursor=page.next_cursor, action=ACTIONS[n % len(ACTIONS)],
                                           limit=50)
                deeper.append(time.perf_counter() - t)
        del runtime

    inserted = result["inserted"]
    rows = [
        ("CSV generated", f"{args.rows:,} rows, {args.accounts:,} accounts, {len(data) / 1e6:.0f} MB "
                          f"({generated:.1f} s)"),
        ("import (run_import: S3, decode, checks, resolution, COPY into staging, INSERT)",
         f"{imported:.1f} s, {inserted:,} inserted, {inserted / imported:,.0f} activities/s"),
        (f"... of which account resolution (identity.resolve_accounts, suggestions {args.suggestions})",
         f"{resolving[0]:.1f} s for {args.accounts:,} accounts"),
        ("... of which staging -> activities (INSERT ... SELECT)", f"{inserting[0]:.1f} s"),
        ("... activities/s without the account resolution", f"{inserted / (imported - resolving[0]):,.0f}"),
        ("bare COPY of the same rows into an equivalent table (same indexes, FKs, triggers)",
         f"{bare:.1f} s, {args.rows / bare:,.0f} rows/s"),
        ("bare COPY of the same rows into a table without indexes or keys",
         f"{plain:.1f} s, {args.rows / plain:,.0f} rows/s"),
        ("CPU: import", str(import_clock)),
        ("CPU: bare COPY (equivalent table)", str(bare_clock)),
        ("CPU: bare COPY (no indexes or keys)", str(plain_clock)),
        ("import rate / bare COPY rate, by CPU seconds (client + server)",
         f"{bare_clock.cpu / import_clock.cpu:.2f}"),
        ("import rate / bare COPY rate (without the resolution)",
         f"{(inserted / imported) / (args.rows / bare):.2f} "
         f"({(inserted / (imported - resolving[0])) / (args.rows / bare):.2f})"),
        ("GET /v1/activities first page (limit 50), p50 / p99",
         f"{percentile(first_page, 50) * 1000:.1f} / {percentile(first_page, 99) * 1000:.1f} ms"),
        ("... filtered by developer, p50 / p99",
         f"{percentile(by_developer, 50) * 1000:.1f} / {percentile(by_developer, 99) * 1000:.1f} ms"),
        ("... second page filtered by action, p50 / p99",
         f"{percentile(deeper, 50) * 1000:.1f} / {percentile(deeper, 99) * 1000:.1f} ms"),
    ]
    rows += breakdown
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  result")
    for label, value in rows:
        print(f"{label:{width}}  {value}")
    print(f"load before / after: {load_before} / {os.getloadavg()[0]:.2f}")
    if profiler:
        stats = io.StringIO()
        pstats.Stats(profiler, stream=stats).sort_stats("cumulative").print_stats(30)
        pstats.Stats(profiler, stream=stats).sort_stats("tottime").print_stats(20)
        print(stats.getvalue())


if __name__ == "__main__":
    main()
