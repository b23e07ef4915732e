"""`funnel migrate`, `funnel tenants ...`, `funnel llm ...`: operator commands."""
from __future__ import annotations

import argparse
import getpass
import json
import sys


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    if command == "migrate":
        parser.add_argument("--workers", type=int, default=4, help="tenant databases migrated at once")
    elif command == "tenants":
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="provision a tenant with an owner user")
        create.add_argument("name")
        create.add_argument("--slug")
        create.add_argument("--pool", metavar="DB", help="place the tenant in this pooled database (default: silo)")
        create.add_argument("--owner-email", required=True)
        create.add_argument("--owner-password", help="default: prompt (or FUNNEL_OWNER_PASSWORD on stdin-less runs)")
        create.add_argument("--plan", default="free")
        sub.add_parser("list", help="list tenants")
    elif command == "llm":
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="show providers, models and step defaults")
        set_default = sub.add_parser("set-default", help="choose the provider and model class of a step")
        set_default.add_argument("step")
        set_default.add_argument("provider")
        set_default.add_argument("model_class", choices=["pro", "standard"])


def _progress(done: int, total: int, result) -> None:
    width = 30
    filled = int(width * done / total)
    state = "ok" if result.ok else "FAILED"
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {','.join(result.tenant_slugs)[:40]} {state}",
          end="" if done < total else "\n", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, command: str) -> int:
    # lazy: `funnel --help` and argument parsing load this module; only a command that runs needs the database
    from funnel import db
    from funnel.platform import migrations

    if command == "migrate":
        results = migrations.migrate_all(workers=args.workers, progress=_progress)
        for result in results:
            status = "ok" if result.ok else f"FAILED: {result.error}"
            print(f"{','.join(result.tenant_slugs):40} {db.database_name(result.database_url):30} "
                  f"{result.seconds:6.2f}s {status}")
        failed = [r for r in results if not r.ok]
        print(f"control: ok; tenant databases: {len(results) - len(failed)} ok, {len(failed)} failed")
        return 1 if failed else 0
    if command == "tenants":
        from funnel.platform import tenants

        if args.action == "list":
            for row in tenants.list_tenants():
                print(f"{row['slug']:30} {row['isolation']:5} {row['status']:12} {row['plan']:8} {row['id']}")
            return 0
        migrations.prepare_control()
        password = args.owner_password or getpass.getpass("owner password: ")
        tenant, owner = tenants.provision(args.name, args.owner_email, password, slug=args.slug, pool=args.pool,
                                          plan=args.plan)
        print(json.dumps({"tenant_id": tenant.id, "slug": tenant.slug, "isolation": tenant.isolation,
                          "database": db.database_name(tenant.database_url), "owner_id": str(owner["id"])}))
        return 0
    if command == "llm":
        from funnel.platform import llm_registry

        if args.action == "set-default":
            llm_registry.set_step_default(args.step, args.provider, args.model_class)
        for row in llm_registry.step_defaults_with_models():
            print(f"{row['step']:24} {row['provider_id']:10} {row['model_class']:9} {row['model_name']}")
        return 0
    return 2
