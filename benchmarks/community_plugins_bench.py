"""Community plugins benchmark: signed GitHub webhook deliveries through ``funnel.community.webhooks.receive`` (the
route's whole path below HTTP: token, plugin, signature, archive, run, accounts, activity), a redelivery and a
refused signature; and a GitHub pull of many stargazers pages from the local GitHub REST server
(tests/support/github_server.py) through ``funnel.community.plugin_runs``.

Run: .venv/bin/python benchmarks/community_plugins_bench.py [--deliveries 500] [--stargazers 10000]
Prints a table; nothing asserts on time. It starts its own local runtime (PostgreSQL, moto) in a temporary directory.
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
WORDS = ["kaze", "sora", "umi", "hoshi", "tsuki", "yama", "kawa", "mori", "nami", "hana", "byte", "code", "dev",
         "pixel", "rust", "lambda", "delta", "nova", "echo", "quark", "fox", "owl", "lynx", "wolf", "bear", "koi"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--stargazers", type=int, default=10_000)
    args = parser.parse_args()

    from funnel import db
    from funnel.community import plugin_runs, plugins, webhooks
    from funnel.settings import reset_settings
    from funnel_dev.runtime import LocalRuntime
    from tests.support.github_server import GithubServer, user
    from tests.support.plugin_webhooks import github_sample
    from tests.support.tenants import new_tenant

    with tempfile.TemporaryDirectory() as state, LocalRuntime(
            Path(state), api_port=free_port(), moto_port=free_port(), pg_port=free_port(), time_scale=0,
            tuned_for_tests=False, ssrf_allow_hosts=["127.0.0.1"]) as runtime, GithubServer() as github_api:
        os.environ["FUNNEL_GITHUB_API_URL"] = github_api.url
        reset_settings()
        tenant = new_tenant()
        with db.tenant_transaction(tenant.tenant_id) as conn:
            plugin = plugins.create(conn, tenant.owner, key="github", name="GitHub", kind="github", enabled=True,
                                    config={"repositories": ["octo-org/bench"]},
                                    secrets={"token": github_api.token})
        token, secret = plugin["webhook_url"].rsplit("/", 1)[1], plugin["webhook_secret"]

        def deliver(body: bytes, delivery: str, signature: str | None = None) -> float:
            headers = {"x-github-event": "star", "x-github-delivery": delivery,
                       "x-hub-signature-256": signature or webhooks.github_signature(secret, body)}
            started = time.perf_counter()
            try:
                webhooks.receive(token, headers, body)
            except Exception:  # the refused signature
                pass
            return time.perf_counter() - started

        def login() -> str:  # logins as varied as real ones: no token shared by every account
            return f"{rng.choice(WORDS)}{rng.choice(WORDS)}{rng.randrange(10_000)}"

        rng = random.Random(15)
        sample = github_sample("star.created")
        bodies = [json.dumps({**sample, "starred_at": f"2025-03-01T12:{n // 60 % 60:02d}:{n % 60:02d}Z",
                              "sender": {**sample["sender"], "id": 9_000_000 + n, "login": login()}}).encode()
                  for n in range(args.deliveries)]
        deliveries = [str(uuid.uuid4()) for _ in bodies]
        started = time.perf_counter()
        fresh = [deliver(body, delivery) for body, delivery in zip(bodies, deliveries, strict=True)]
        wall = time.perf_counter() - started
        replays = [deliver(body, delivery) for body, delivery in zip(bodies[:200], deliveries[:200], strict=True)]
        refused = [deliver(body, str(uuid.uuid4()), "sha256=" + "0" * 64) for body in bodies[:200]]

        repo = github_api.add_repo(910001, "octo-org/bench")
        start = datetime(2024, 1, 1, tzinfo=UTC)
        for n in range(args.stargazers):
            repo.stargazers.append(((start + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    user(8_000_000 + n, login())))
        run = plugin_runs.start_pull(tenant.tenant_id, plugin["plugin_id"], "manual")
        assert run is not None
        pulled = time.perf_counter()
        finished = plugin_runs.run_pull(tenant.tenant_id, run, 600)
        pulled = time.perf_counter() - pulled
        del runtime

    rows = [
        ("signed star deliveries (new account + activity each)",
         f"{args.deliveries / wall:.0f}/s; p50 / p99 {percentile(fresh, 50) * 1000:.1f} / "
         f"{percentile(fresh, 99) * 1000:.1f} ms"),
        ("redelivery (recorded once), p50 / p99",
         f"{percentile(replays, 50) * 1000:.1f} / {percentile(replays, 99) * 1000:.1f} ms"),
        ("refused signature (401, nothing written), p50 / p99",
         f"{percentile(refused, 50) * 1000:.1f} / {percentile(refused, 99) * 1000:.1f} ms"),
        (f"pull of {args.stargazers:,} stargazers ({finished['result'].get('pages')} pages)",
         f"{pulled:.1f} s, {finished['result'].get('activities', 0) / pulled:.0f} activities/s, "
         f"status {finished['status']}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  result")
    for label, value in rows:
        print(f"{label:{width}}  {value}")


if __name__ == "__main__":
    main()
