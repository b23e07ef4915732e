"""Platform benchmarks: cold imports, warm API latency, tenant provisioning, migrating 50 tenants.

Run: .venv/bin/python benchmarks/platform_bench.py [--tenants 50] [--requests 500] [--cold-runs 9]
Prints a table; nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from funnel_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BARE_APP = ROOT / "benchmarks" / "bare_fastapi_app.py"
# A fresh interpreter imports a handler module the way Lambda does (interpreter start excluded), then,
# with a request given, answers it: "cold import" and "cold import + first request".
COLD_CODE = """
import json, sys, time, importlib.util as u
request = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
t = time.perf_counter()
s = u.spec_from_file_location('handler_module', sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m)
imported = time.perf_counter() - t
if request is not None:
    response = m.handler(request, None)
    assert response['statusCode'] == 200, response
print(imported, time.perf_counter() - t)
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def cold_start(app: Path, request: dict | None = None, env: dict | None = None) -> tuple[float, float]:
    """(import, import + first request) in ms, in a fresh interpreter."""
    argv = [sys.executable, "-c", COLD_CODE, str(app)] + ([json.dumps(request)] if request is not None else [])
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                         env={**(env or os.environ), "AWS_DEFAULT_REGION": "us-east-1"})
    if out.returncode != 0:
        raise RuntimeError(f"{app}: {out.stderr[-2000:]}")
    imported, answered = map(float, out.stdout.strip().splitlines()[-1].split())
    return imported * 1000, answered * 1000


def paired_cold_starts(requests: tuple[dict | None, dict | None], runs: int, index: int,
                       env: dict | None = None) -> tuple[float, float]:
    """Median over ``runs`` of the API function and the bare FastAPI + Mangum app, run in turns in the
    same loop so that both see the same machine (``index`` 0: import, 1: import + first request)."""
    api, bare = [], []
    for _ in range(runs):
        api.append(cold_start(ROOT / "functions" / "api" / "app.py", requests[0], env)[index])
        bare.append(cold_start(BARE_APP, requests[1], env)[index])
    return statistics.median(api), statistics.median(bare)


def cold_imports(runs: int = 5) -> list[tuple[str, float]]:
    """Median cold import of every other function's handler module."""
    results = []
    for app in sorted(ROOT.glob("functions/*/app.py")):
        if app.parent.name == "api":
            continue
        try:
            timings = [cold_start(app)[0] for _ in range(runs)]
        except RuntimeError:
            timings = []
        results.append((app.parent.name, statistics.median(timings) if timings else float("nan")))
    return results


def v2_event(method: str, path: str, headers: dict[str, str], query: str = "") -> dict:
    return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            "headers": {k.lower(): v for k, v in headers.items()},
            "requestContext": {"http": {"method": method, "path": path, "sourceIp": "127.0.0.1",
                                        "protocol": "HTTP/1.1", "userAgent": "bench"},
                               "requestId": uuid.uuid4().hex, "stage": "$default"},
            "isBase64Encoded": False}


def warm_latency(handler, headers: dict, path: str, query: str, requests: int) -> tuple[float, float]:
    return warm_latencies(handler, [headers], path, query, requests)[0]


def warm_latencies(handler, callers: list[dict], path: str, query: str, requests: int) -> list[tuple[float, float]]:
    """(p50, p99) in ms of the same GET for each caller's headers, the callers taking turns request by request
    so that each sees the same machine."""
    for _ in range(20):
        for headers in callers:
            handler(v2_event("GET", path, headers, query), None)
    timings: list[list[float]] = [[] for _ in callers]
    for _ in range(requests):
        for headers, caller_timings in zip(callers, timings, strict=True):
            started = time.perf_counter()
            response = handler(v2_event("GET", path, headers, query), None)
            caller_timings.append((time.perf_counter() - started) * 1000)
            assert response["statusCode"] == 200, response
    return [(statistics.median(t), percentile(t, 99)) for t in timings]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--cold-runs", type=int, default=9, help="fresh interpreters per cold-start figure")
    args = parser.parse_args()

    rows: list[tuple[str, str, str]] = []
    api_ms, bare_ms = paired_cold_starts((None, None), args.cold_runs, 0)
    rows.append(("cold import: functions/api vs bare FastAPI + Mangum (same run, median)",
                 f"{api_ms:.0f} vs {bare_ms:.0f} ms ({api_ms / bare_ms:.2f}x)", "<= 1.5x bare"))
    for name, ms in cold_imports():
        rows.append((f"cold import: functions/{name}", f"{ms:.0f} ms", ""))

    from funnel_dev.runtime import LocalRuntime

    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=True) as runtime:
        import httpx

        from funnel.platform import migrations, tenants
        from tests.support.tenants import new_tenant

        started = time.perf_counter()
        handle = new_tenant()
        rows.append(("provision one silo tenant (DB + migrations + owner)",
                     f"{(time.perf_counter() - started) * 1000:.0f} ms", "< 3000 ms"))

        key = httpx.post(runtime.api_url + "/v1/api-keys", json={"name": "bench"}, timeout=30,
                         headers={**handle.headers, "Idempotency-Key": uuid.uuid4().hex}).json()["key"]
        first = (v2_event("GET", "/v1/me", {"x-api-key": key}), v2_event("GET", "/healthz", {}))
        api_ms, bare_ms = paired_cold_starts(first, args.cold_runs, 1, env=dict(os.environ))
        rows.append(("cold import + first request: api GET /v1/me (API key, DB) vs bare GET /healthz",
                     f"{api_ms:.0f} vs {bare_ms:.0f} ms ({api_ms / bare_ms:.2f}x)", ""))

        sys.path.insert(0, str(ROOT / "functions" / "api"))
        import importlib.util

        spec = importlib.util.spec_from_file_location("api_app", ROOT / "functions" / "api" / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for i in range(30):
            module.handler({**v2_event("POST", "/v1/api-keys", handle.headers), "body": json.dumps({"name": f"k{i}"})},
                           None)
        # A bearer token costs one control-DB read (is its session family live?) before the tenant's user is
        # read; an API key one control-DB read (its tenant) and the tenant's key row (and a last-used write).
        (bearer_p50, bearer_p99), (key_p50, key_p99) = warm_latencies(
            module.handler, [handle.headers, {"x-api-key": key}], "/v1/me", "", args.requests)
        rows.append(("warm GET /v1/me, bearer + session check (Mangum, in-process, local PG) p50 / p99",
                     f"{bearer_p50:.2f} / {bearer_p99:.2f} ms", "p99 < 15 ms"))
        rows.append(("warm GET /v1/me, API key (in turns with the bearer requests) p50 / p99",
                     f"{key_p50:.2f} / {key_p99:.2f} ms", "p99 < 15 ms"))
        p50, p99 = warm_latency(module.handler, handle.headers, "/v1/audit-logs", "limit=20", args.requests)
        rows.append(("warm GET /v1/audit-logs?limit=20 p50 / p99", f"{p50:.2f} / {p99:.2f} ms", "p99 < 15 ms"))

        for _ in range(args.tenants - 1):
            tenants.provision(f"Bench {uuid.uuid4().hex[:6]}", f"{uuid.uuid4().hex[:8]}@example.com",
                              "bench password 123", slug=f"b-{uuid.uuid4().hex[:10]}")
        from funnel import db

        started = time.perf_counter()
        results = migrations.migrate_all(workers=4)
        rows.append((f"funnel migrate: {len(results)} tenant databases already at head",
                     f"{time.perf_counter() - started:.2f} s", ""))
        for result in results:  # empty every tenant schema, then measure migrating all of them from scratch
            migrations.run("tenant", db.admin_url(db.database_name(result.database_url)), "downgrade", "base")
        started = time.perf_counter()
        results = migrations.migrate_all(workers=4)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        rows.append((f"funnel migrate: {len(results)} tenant databases from empty to head",
                     f"{time.perf_counter() - started:.2f} s", ""))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  {'result':>22}  target")
    for label, value, target in rows:
        print(f"{label:{width}}  {value:>22}  {target}")


if __name__ == "__main__":
    main()
