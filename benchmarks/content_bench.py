"""Content benchmark: pipeline overhead per article with the offline provider
(everything but model time) end to end through the local runtime, and publish
throughput to a local real WordPress. Prints a table; asserts nothing.

    .venv/bin/python benchmarks/content_bench.py [--articles 5] [--runs 2] [--posts 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from funnel_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGE = b"<html><head><title>BenchCRM</title></head><body><main><p>" + b"A CRM for sales teams. " * 40 + \
    b"</p></main></body></html>"


def _product_server() -> str:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/bench"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--posts", type=int, default=20)
    args = parser.parse_args()


    from funnel.content.wordpress import WordPressSite
    from funnel_dev.runtime import LocalRuntime
    from tests.support import wordpress as wp_support
    from tests.support.tenants import new_tenant

    reason = wp_support.available()
    if reason:
        print(f"content benchmark skipped: {reason}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wp = wp_support.LocalWordPress(Path(tmp) / "wp").start()
        runtime = LocalRuntime(Path(tmp) / "runtime", api_port=free_port(), moto_port=free_port(), pg_port=free_port(),
                               time_scale=0, tuned_for_tests=True, ssrf_allow_hosts=["127.0.0.1"]).start()
        try:
            product_url = _product_server()
            tenant = new_tenant()
            from tests.support.gateway_client import gateway_client

            api = gateway_client(runtime.api_url, headers=tenant.headers, timeout=60)
            for step in ("analyze_product", "plan_cluster", "write_article", "generate_image"):
                api.put(f"/v1/llm/step-defaults/{step}", json={"provider_id": "offline", "model_class": "standard"})
            site = api.post("/v1/sites", json={"slug": "bench", "wp_admin_url": wp.base, "wp_username": wp.username,
                                               "wp_api_token": wp.app_password}).json()
            for style, label in (("none", "text only"), ("flat", "with 1200x630 cover image")):
                product = api.post("/v1/products", json={"url": product_url, "site_id": site["id"],
                                                         "image_style": style}).json()
                per_article = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    run = api.post(f"/v1/products/{product['id']}/generate",
                                   json={"articles_count": args.articles, "publish_mode": "publish"}).json()
                    while run["status"] not in ("completed", "failed"):
                        time.sleep(0.02)
                        run = api.get(f"/v1/runs/{run['id']}").json()
                    elapsed = time.perf_counter() - started
                    if run["status"] != "completed":
                        print("run failed:", run["error_message"])
                        return 1
                    per_article.append(elapsed / args.articles)
                rows.append((f"pipeline per article, {label} ({args.articles} articles/run, offline model)",
                             f"{statistics.median(per_article):.3f} s",
                             f"min {min(per_article):.3f} s / max {max(per_article):.3f} s over {args.runs} runs"))
            client = WordPressSite(wp.base, wp.username, wp.app_password)
            times = []
            for i in range(args.posts):
                started = time.perf_counter()
                client.upsert_post(post_id=None, slug=f"bench-{i}-{time.time_ns()}", title=f"Bench {i}",
                                   html="<p>x</p>" * 200, excerpt="", status="publish")
                times.append(time.perf_counter() - started)
            rows.append(("WordPress publish (create, slug check + POST)", f"{statistics.median(times) * 1000:.1f} ms",
                         f"{len(times) / sum(times):.1f} posts/s sequential, p max {max(times) * 1000:.1f} ms"))
        finally:
            runtime.stop()
            wp.stop()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'median':>10}  detail")
    for name, value, detail in rows:
        print(f"{name.ljust(width)}  {value:>10}  {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
