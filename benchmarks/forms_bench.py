"""Form engine benchmark: seconds per form with a warm browser, and the forms scorer's pass count.

Run: .venv/bin/python benchmarks/forms_bench.py [--runs 3] [--screenshots] [--skip-scorer]

Every example case of tests/fixtures/forms-examples is served by the scorer's own server
and submitted --runs times through one warm FormEngine (browser start not included).
Then the scorer runs the `funnel form-submit` CLI on every case (one process and one
browser launch per case, as the acceptance benchmark does). Prints tables; asserts nothing.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
EXAMPLES = ROOT / "tests" / "fixtures" / "forms-examples"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def load_scorer():
    spec = importlib.util.spec_from_file_location("formbench_scorer", EXAMPLES / "scorer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def warm_timings(runs: int, screenshots: bool) -> tuple[dict[str, list[float]], dict[str, str]]:
    from funnel.outreach.forms.engine import FormEngine
    from funnel.outreach.forms.model import SenderProfile

    scorer = load_scorer()
    sender = SenderProfile.from_dict(scorer.SENDER)
    cases = sorted(p for p in (EXAMPLES / "cases").iterdir() if (p / "expected.json").is_file())
    timings: dict[str, list[float]] = {}
    statuses: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as shots, \
            FormEngine(allow_hosts=["127.0.0.1"], screenshot_dir=shots if screenshots else None) as engine:
        for case in cases:
            expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
            for _ in range(runs):
                state, server, url = scorer.start_server(str(case), expected)
                try:
                    started = time.perf_counter()
                    result = engine.submit(url, sender, scorer.MESSAGE)
                    timings.setdefault(case.name, []).append(time.perf_counter() - started)
                finally:
                    server.shutdown()
                    server.server_close()
                ok = not scorer.judge(expected, result.status, state)
                statuses[case.name] = f"{result.status} ({'pass' if ok else 'FAIL'})"
    return timings, statuses


def scorer_pass_line() -> tuple[str, float]:
    command = (f"{sys.executable} -m funnel.cli form-submit {{url}} --sender {{sender}} "
               "--message-file {message} --json")
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "shared"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, str(EXAMPLES / "scorer.py"), "--cmd", command, "--timeout", "60"],
                               cwd=ROOT, capture_output=True, text=True, env=env)
    lines = completed.stdout.strip().splitlines()
    elapsed = time.perf_counter() - started
    return (lines[-1] if lines else f"scorer printed nothing (rc={completed.returncode})"), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="submissions per case (default 3)")
    parser.add_argument("--screenshots", action="store_true", help="also store the two screenshots per form")
    parser.add_argument("--skip-scorer", action="store_true", help="do not run the scorer through the CLI")
    args = parser.parse_args()
    if not (EXAMPLES / "scorer.py").is_file():
        print(f"form examples not found at {EXAMPLES}", file=sys.stderr)
        return 2

    timings, statuses = warm_timings(args.runs, args.screenshots)
    width = max(len(name) for name in timings)
    print(f"warm browser, {args.runs} runs per case, screenshots {'on' if args.screenshots else 'off'}")
    print(f"{'case'.ljust(width)}  {'median s':>8}  {'max s':>6}  status")
    for name, values in timings.items():
        print(f"{name.ljust(width)}  {statistics.median(values):8.3f}  {max(values):6.3f}  {statuses[name]}")
    every = [v for values in timings.values() for v in values]
    print(f"{'ALL'.ljust(width)}  median {statistics.median(every):.3f} s   p95 {percentile(every, 95):.3f} s   "
          f"({len(every)} forms)")
    if not args.skip_scorer:
        line, seconds = scorer_pass_line()
        print(f"scorer via CLI (cold process per case): {line}   [{seconds:.1f} s total]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
