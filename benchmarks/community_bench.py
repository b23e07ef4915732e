"""Community benchmarks (issue #15): runs each of the area's benchmarks in turn and prints their figures.

- community_ingest_bench.py: CSV ingest of 1,000,000 activities beside a bare COPY of the same rows, and the
  activity list's p99;
- community_identity_bench.py: identity resolution of 100,000 accounts (time and memory);
- community_query_bench.py: developer search and the 360 profile p99 with 1,000,000 activities;
- community_plugins_bench.py: signed GitHub deliveries and a stargazer pull.

Run: .venv/bin/python benchmarks/community_bench.py. Each runs in its own process with its own PostgreSQL;
nothing asserts on time. (`make bench` runs the parts directly and skips this wrapper.)
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = ("community_ingest_bench.py", "community_identity_bench.py", "community_query_bench.py",
         "community_plugins_bench.py")


def main(argv: list[str]) -> int:
    failed = False
    for part in PARTS:
        print(f"== {part}", flush=True)
        failed |= subprocess.call([sys.executable, str(HERE / part), *argv]) != 0
    return int(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
