"""Document e-mail benchmarks: tracking handler warm latency (with its database write) beside a bare
psycopg INSERT round trip, the tracking function's cold import and first request, and rendering
10,000 personalised messages.

Run: .venv/bin/python benchmarks/email_bench.py [--requests 500] [--messages 10000]
Prints a table; nothing asserts on time.
"""
from __future__ import annotations

import argparse
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
TRACKING = ROOT / "functions" / "email_tracking" / "app.py"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def cold_import_ms(runs: int = 5, first_event_modules: bool = False) -> float:
    extra = "import funnel.email.events, funnel.db; " if first_event_modules else ""
    code = ("import time, importlib.util as u; t = time.perf_counter(); "
            f"s = u.spec_from_file_location('tracking', {str(TRACKING)!r}); m = u.module_from_spec(s); "
            f"s.loader.exec_module(m); {extra}print((time.perf_counter() - t) * 1000)")
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(runs))


def send_campaign(runtime, handle, size: int) -> tuple[str, str, str]:
    """A campaign of ``size`` recipients through the API, the email queue, the sender (5 pollers) and moto SES."""
    import os

    from funnel import db
    from funnel.settings import reset_settings

    os.environ["FUNNEL_EMAIL_MAX_PER_SECOND"] = "100000"  # measure the pipeline, not the tenant's limit
    reset_settings()
    recipients = [{"email": f"bench{i}@example.org", "name": f"読者{i}", "company": f"会社{i}"} for i in range(size)]
    from tests.support.gateway_client import gateway_client

    with gateway_client(runtime.api_url, headers=handle.headers, timeout=120) as api:
        created = api.post("/v1/email-campaigns", json={
            "name": "bench", "subject": "{{company_name}} 様", "from_name": "Bench", "body": "{{name}} 様",
            "sender_identity": "Bench Inc. Tokyo", "recipients": recipients})
        created.raise_for_status()
        campaign_id = created.json()["id"]
        started = time.perf_counter()
        api.post(f"/v1/email-campaigns/{campaign_id}/send").raise_for_status()
        while True:
            with db.tenant_transaction(handle.tenant_id) as conn:
                row = conn.execute("SELECT status FROM email_campaigns WHERE id = %s", (campaign_id,)).fetchone()
            if row["status"] == "sent":
                break
            time.sleep(0.2)
    seconds = time.perf_counter() - started
    return (f"campaign of {size:,} recipients: send request to all sent (queue, 5 senders, moto SES)",
            f"{seconds:.1f} s, {size / seconds:.0f}/s", "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--campaign", type=int, default=1_000, help="recipients of the campaign sent end to end")
    args = parser.parse_args()
    rows = [("tracking function cold import (module, min of 5)", f"{cold_import_ms():.1f} ms", "< 150 ms"),
            ("tracking function cold import + modules of its first event (db layer), min of 5",
             f"{cold_import_ms(first_event_modules=True):.1f} ms", "")]

    import importlib.util

    from funnel import db
    from funnel.email import mime, tokens
    from funnel.settings import get_settings
    from funnel_dev.runtime import LocalRuntime
    from tests.support.tenants import new_tenant

    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=True) as runtime:
        handle = new_tenant()
        with db.tenant_transaction(handle.tenant_id) as conn:
            campaign = conn.execute(
                "INSERT INTO email_campaigns (name, subject, body, from_name, from_address, sender_identity) "
                "VALUES ('bench', '{{company_name}} 様', '{{name}} 様 https://docs.example.com/a.pdf', 'Bench', "
                "'bench@example.com', 'Bench Inc. Tokyo') RETURNING *").fetchone()
            message = conn.execute("INSERT INTO email_messages (campaign_id, email, status, sent_at) VALUES "
                                   "(%s, 'reader@example.org', 'sent', now() - interval '1 hour') RETURNING id",
                                   (campaign["id"],)).fetchone()
        key = tokens.tracking_key()
        path = f"/t/o/{tokens.sign(key, 'o', handle.tenant_id, str(message['id']))}.gif"
        first_request = ("import time, importlib.util as u; t = time.perf_counter(); "
                         f"s = u.spec_from_file_location('tracking', {str(TRACKING)!r}); m = u.module_from_spec(s); "
                         "s.loader.exec_module(m); r = m.handler({'rawPath': %r, 'requestContext': {'requestId': 'x', "
                         "'http': {'method': 'GET', 'sourceIp': '198.51.100.7', 'userAgent': %r}}}, None); "
                         "assert r['statusCode'] == 200; print((time.perf_counter() - t) * 1000)") % (path, BROWSER)
        # The last line: the request's metric (an EMF line) is printed before it.
        cold_first = min(float(subprocess.run([sys.executable, "-c", first_request], capture_output=True, text=True,
                                              check=True).stdout.splitlines()[-1]) for _ in range(3))
        rows.append(("tracking: cold import + first pixel request in a fresh process (secret, DB write)",
                     f"{cold_first:.0f} ms", ""))
        spec = importlib.util.spec_from_file_location("tracking_bench", TRACKING)
        tracking = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tracking)

        def event() -> dict:
            return {"rawPath": path, "requestContext": {"requestId": uuid.uuid4().hex, "http": {
                "method": "GET", "sourceIp": "198.51.100.7", "userAgent": BROWSER}}}

        timings = []
        for _ in range(args.requests):
            t = time.perf_counter()
            tracking.handler(event(), None)
            timings.append((time.perf_counter() - t) * 1000)
        bare = []
        with db.tenant_transaction(handle.tenant_id) as conn:
            conn.execute("SELECT 1")
        for _ in range(args.requests):
            t = time.perf_counter()
            with db.tenant_transaction(handle.tenant_id) as conn:
                conn.execute("INSERT INTO email_events (email_message_id, type) VALUES (%s, 'delivery')",
                             (message["id"],))
            bare.append((time.perf_counter() - t) * 1000)
        rows.append(("tracking pixel, warm, with its event INSERT: p50 / p99",
                     f"{statistics.median(timings):.2f} / {percentile(timings, 99):.2f} ms", "p99 within 3x of bare"))
        rows.append(("bare psycopg INSERT round trip (same transaction setup): p50 / p99",
                     f"{statistics.median(bare):.2f} / {percentile(bare, 99):.2f} ms",
                     f"ratio {percentile(timings, 99) / percentile(bare, 99):.1f}x"))
        recipients = [{"id": str(uuid.uuid4()), "email": f"r{i}@example.org", "name": f"読者{i}",
                       "company": f"会社{i}"} for i in range(args.messages)]
        t = time.perf_counter()
        for recipient in recipients:
            mime.build(campaign, recipient, handle.tenant_id, key, get_settings().public_base_url).as_bytes()
        rows.append((f"render {args.messages:,} personalised MIME messages", f"{time.perf_counter() - t:.2f} s",
                     "< 5 s"))
        rows.append(send_campaign(runtime, handle, args.campaign))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  {'result':>18}  target")
    for label, value, target in rows:
        print(f"{label:{width}}  {value:>18}  {target}")


if __name__ == "__main__":
    main()
