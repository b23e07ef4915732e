"""``funnel dev``: the whole product on this machine, data kept in ``.funnel/``.

Starts the local runtime, prepares the control database, seeds a demo tenant
(owner ``owner@demo.example.com``) with an API key on the first start, prints
the URLs and credentials, and runs until Ctrl-C (SIGINT) or SIGTERM, then
stops everything and snapshots the AWS state so the next start resumes.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import threading
from pathlib import Path

HELP = "run the whole product locally (PostgreSQL, moto, API gateway, workers)"

DEMO_SLUG = "demo"
DEMO_OWNER = "owner@demo.example.com"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:  # noqa: ARG001 (dispatcher signature)
    parser.add_argument("--state-dir", type=Path, default=Path(".funnel"),
                        help="where PostgreSQL data, AWS state and demo credentials live (default: .funnel)")
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--moto-port", type=int, default=5055)
    parser.add_argument("--pg-port", type=int, default=5433)
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="factor on Step Functions Retry intervals and Wait states (0 = no waiting)")
    parser.add_argument("--ssrf-allow-hosts", default="",
                        help="comma-separated hosts the SSRF guard lets through (local test sites)")
    parser.add_argument("--log-level", default="INFO")


def _seed_demo_tenant(credentials_file: Path) -> dict:
    """The demo tenant, its owner and an API key; created once, then read back from ``credentials_file``."""
    from funnel.platform import auth, tenants
    from funnel.platform.errors import NotFound
    from funnel.platform.principal import Principal

    saved = json.loads(credentials_file.read_text()) if credentials_file.exists() else {}
    try:
        tenant = tenants.directory.by_slug(DEMO_SLUG)
        if saved.get("api_key"):
            return {**saved, "tenant_id": tenant.id}
    except NotFound:
        password = saved.get("password") or secrets.token_urlsafe(12)
        tenant, _ = tenants.provision("Demo", DEMO_OWNER, password, slug=DEMO_SLUG)
        _use_offline_models(tenant.id)
        saved = {"email": DEMO_OWNER, "password": password}
    # The tenant exists but no key was recorded (first start was interrupted): make one.
    with_owner = _owner(tenant.id)
    principal = Principal(tenant_id=tenant.id, user_id=str(with_owner["id"]), role="owner", email=DEMO_OWNER)
    key = auth.create_api_key(principal, "funnel dev", "admin", None)
    saved = {**saved, "tenant_id": tenant.id, "tenant_slug": DEMO_SLUG, "api_key": key["key"]}
    credentials_file.write_text(json.dumps(saved, indent=2))
    os.chmod(credentials_file, 0o600)
    return saved


def _use_offline_models(tenant_id: str) -> None:
    """The demo tenant starts on the labelled offline model for every step, so pipelines run with no API key;
    an admin switches a step to a real provider with PUT /v1/llm/step-defaults/{step}."""
    from funnel import db
    from funnel.platform import store_llm, store_settings

    with db.control_transaction() as conn:
        steps = [row["step"] for row in store_llm.step_defaults(conn)]
    choice = {step: {"provider_id": "offline", "model_class": "standard"} for step in steps}
    with db.tenant_transaction(tenant_id) as conn:
        store_settings.save_ai_settings(conn, {"step_models": choice})


def _owner(tenant_id: str) -> dict:
    from funnel import db
    from funnel.platform import store_users

    with db.tenant_transaction(tenant_id) as conn:
        owner = store_users.user_by_email(conn, DEMO_OWNER)
    assert owner is not None, "the demo tenant has its owner (provisioned with it)"
    return owner


def run(args: argparse.Namespace, command: str) -> int:  # noqa: ARG001 (dispatcher signature)
    from funnel_dev.postgres import PostgresNotInstalled
    from funnel_dev.runtime import LocalRuntime

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state_dir = args.state_dir.resolve()
    stop_requested = threading.Event()

    def request_stop(signum, frame):  # noqa: ARG001 (signal handler signature)
        stop_requested.set()

    runtime = LocalRuntime(state_dir, api_port=args.api_port, moto_port=args.moto_port, pg_port=args.pg_port,
                           time_scale=args.time_scale,
                           ssrf_allow_hosts=[h.strip() for h in args.ssrf_allow_hosts.split(",") if h.strip()])
    try:
        runtime.start()
    except PostgresNotInstalled as exc:
        print(f"funnel dev: {exc}")
        return 1
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        demo = _seed_demo_tenant(state_dir / "demo-credentials.json")
        print(f"""
Funnel is running (started in {runtime.startup_seconds:.1f} s; data in {state_dir})

  API            {runtime.api_url}            (routes of template.yaml)
  OpenAPI        {runtime.api_url}/openapi.json
  AWS (moto)     {runtime.moto_url}            (AWS_ENDPOINT_URL for the aws CLI / boto3)
  PostgreSQL     {runtime.pg.url()}

  Demo tenant    {demo['tenant_slug']}  ({demo['tenant_id']})
  Owner          {demo['email']}
  Password       {demo['password']}
  API key        {demo['api_key']}
                 (kept in {state_dir / 'demo-credentials.json'})

  curl -s {runtime.api_url}/v1/me -H "x-api-key: {demo['api_key']}"

Ctrl-C stops everything; the next `make dev` resumes with the same data.
""", flush=True)
        stop_requested.wait()
        print("stopping...", flush=True)
    finally:
        runtime.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped; data kept in", state_dir)
    return 0
