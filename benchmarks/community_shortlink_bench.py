"""Community shortlink benchmarks: the tracking function's ``/s/{key}`` redirect, warm, with its writes (the
control-DB route read, the tenant's link read, the anon-id lookup and the click activity through the activities
service), beside a bare psycopg INSERT round trip in the same run (the e-mail pixel's method,
benchmarks/email_bench.py); a machine request (HEAD: no write) and a QR code's rendering.

Run: .venv/bin/python benchmarks/community_shortlink_bench.py [--requests 500]
Prints a table; nothing asserts on time.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from funnel_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TRACKING = ROOT / "functions" / "email_tracking" / "app.py"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(requests: int, run) -> list[float]:
    timings = []
    for _ in range(requests):
        t = time.perf_counter()
        run()
        timings.append((time.perf_counter() - t) * 1000)
    return timings


def figures(timings: list[float]) -> str:
    return f"{statistics.median(timings):.2f} / {percentile(timings, 99):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()

    from funnel import db
    from funnel.community import shortlink_qr, shortlinks
    from funnel.platform.principal import Principal
    from funnel_dev.runtime import LocalRuntime
    from tests.support.tenants import new_tenant

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=True) as runtime:
        del runtime
        handle = new_tenant(pool="pool_bench_shortlinks")
        owner = Principal(tenant_id=handle.tenant_id, user_id=handle.owner_id, role="owner")
        with db.tenant_transaction(handle.tenant_id) as conn:
            link = shortlinks.create(conn, owner, {"target_url": "https://example.com/docs?lang=ja",
                                                   "utm": {"utm_source": "bench", "utm_medium": "qr"}})
        spec = importlib.util.spec_from_file_location("tracking_bench", TRACKING)
        assert spec and spec.loader
        tracking = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tracking)

        def event(method: str = "GET", cookie: str | None = None) -> dict:
            return {"rawPath": f"/s/{link['key']}", "headers": {"host": "127.0.0.1", "user-agent": BROWSER},
                    "cookies": [cookie] if cookie else [],
                    "requestContext": {"requestId": uuid.uuid4().hex, "http": {
                        "method": method, "sourceIp": "198.51.100.7", "userAgent": BROWSER}}}

        assert tracking.handler(event(), None)["statusCode"] == 302  # warm: pools, modules, the tenant directory
        returning = f"{shortlinks.ANON_COOKIE}={uuid.uuid4().hex}"
        clicks = timed(args.requests, lambda: tracking.handler(event(), None))
        known = timed(args.requests, lambda: tracking.handler(event(cookie=returning), None))
        heads = timed(args.requests, lambda: tracking.handler(event("HEAD"), None))
        with db.tenant_transaction(handle.tenant_id) as conn:
            conn.execute("SELECT 1")

        def bare_insert() -> None:
            with db.tenant_transaction(handle.tenant_id) as conn:
                conn.execute("INSERT INTO activities (anon_id, action, occurred_at, source) "
                             "VALUES ('bench', 'bench', now(), 'bench')")

        bare = timed(args.requests, bare_insert)
        rows.append(("redirect, warm, new visitor (route read + link read + click INSERT): p50 / p99",
                     figures(clicks), "p99 within 3x of bare"))
        rows.append(("redirect, warm, returning visitor's cookie (+ anon-id lookup): p50 / p99", figures(known), ""))
        rows.append(("HEAD (machine: redirected, nothing written): p50 / p99", figures(heads), ""))
        rows.append(("bare psycopg INSERT round trip (same transaction setup): p50 / p99", figures(bare),
                     f"ratio {percentile(clicks, 99) / percentile(bare, 99):.1f}x"))
        with db.tenant_transaction(handle.tenant_id) as conn:
            for kind in ("png", "svg"):
                qr = timed(50, lambda kind=kind: shortlink_qr.qr_code(conn, link["shortlink_id"], kind=kind,
                                                                    ecc="M", scale=10))
                rows.append((f"QR code, {kind.upper()}, scale 10, ECC M: p50 / p99", figures(qr), ""))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  {'result':>18}  target")
    for label, value, target in rows:
        print(f"{label:{width}}  {value:>18}  {target}")


if __name__ == "__main__":
    main()
