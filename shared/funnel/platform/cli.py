"""`funnel migrate`, `funnel tenants ...`, `funnel servers ...`, `funnel llm ...`: operator commands.

The database commands are operations of ``funnel.platform.operations``: run in this process (the databases
reachable from here), or with ``--stack NAME`` by that stack's PlatformOperationsFunction inside its VPC
(``funnel.platform.operations_remote``). Both print the same report.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys

STACK_HELP = "run it in this CloudFormation stack's PlatformOperationsFunction (inside its VPC) instead of here"


def _stack_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", metavar="NAME", help=STACK_HELP)


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    if command == "migrate":
        parser.add_argument("--workers", type=int, default=4, help="tenant databases migrated at once")
        _stack_option(parser)
    elif command == "tenants":
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="provision a tenant with an owner user")
        create.add_argument("name")
        create.add_argument("--slug")
        where = create.add_mutually_exclusive_group()
        where.add_argument("--pool", metavar="DB", help="place the tenant in this pooled database (default: silo)")
        where.add_argument("--pooled", action="store_true",
                           help="place the tenant in a pooled database below its limit (a new one when all are full)")
        create.add_argument("--owner-email", required=True)
        create.add_argument("--owner-password", help="default: prompt")
        create.add_argument("--plan", default="free")
        _stack_option(create)
        _stack_option(sub.add_parser("list", help="list tenants"))
        migrate = sub.add_parser("migrate", help="upgrade one tenant's database to head")
        migrate.add_argument("slug")
        _stack_option(migrate)
        delete = sub.add_parser("delete", help="purge a tenant now, whatever its deletion schedule: its Stripe "
                                "subscription, schedules, S3 objects, database (silo) or pooled rows, control rows "
                                "and directory entry (run it again to finish a purge that stopped half way)")
        delete.add_argument("slug")
        delete.add_argument("--yes", action="store_true", required=True,
                            help="yes, remove everything of the tenant, for good")
        _stack_option(delete)
        move = sub.add_parser("move", help="move a silo tenant's database to another server (pg_dump | pg_restore)")
        move.add_argument("slug")
        move.add_argument("--to", required=True, metavar="SERVER", help="id of the server (funnel servers list)")
        move.add_argument("--grace-seconds", type=float, default=None,
                          help="how long the old database stays, read-only, after the switch (default: the "
                               "tenant directory's cache time, so no process still reads the old place)")
        restore = sub.add_parser("restore", help="restore a workspace export (POST /v1/export) into an empty database")
        restore.add_argument("archive", help="the .tar.gz: a file, s3://bucket/key, or a key of the artifacts bucket "
                                             "(exports/{tenant_id}/{run_id}.tar.gz)")
        restore.add_argument("--database-url", required=True,
                             help="postgresql://host:port/db of an empty database, created when missing (without "
                                  "credentials: the owner role's)")
    elif command == "servers":
        sub = parser.add_subparsers(dest="action", required=True)
        _stack_option(sub.add_parser("list", help="database servers, their capacity and how full they are"))
        add = sub.add_parser("add", help="register a database server tenants may be placed on")
        add.add_argument("id")
        add.add_argument("url", help="postgresql://host:port/?sslmode=require (no database, no credentials)")
        add.add_argument("--capacity", type=int, required=True, help="databases it may hold")
        _stack_option(add)
        change = sub.add_parser("set", help="change a server's state or capacity")
        change.add_argument("id")
        change.add_argument("--state", choices=["open", "draining"])
        change.add_argument("--capacity", type=int)
        _stack_option(change)
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
    state = "FAILED" if result.status in ("failed", "not_reached") else result.status
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {','.join(result.tenant_slugs)[:40]} {state}",
          end="" if done < total else "\n", file=sys.stderr, flush=True)


def _event(args: argparse.Namespace, command: str) -> dict:
    """The operation (funnel.platform.operations) a command line asks for."""
    if command == "migrate":
        return {"action": "migrate_all", "workers": args.workers}
    if command == "servers":
        if args.action == "add":
            return {"action": "add_server", "id": args.id, "url": args.url, "capacity": args.capacity}
        if args.action == "set":
            return {"action": "set_server", "id": args.id, "state": args.state, "capacity": args.capacity}
        return {"action": "list_servers"}
    if args.action == "create":
        password = args.owner_password or getpass.getpass("owner password: ")
        return {"action": "provision_tenant", "name": args.name, "slug": args.slug, "owner_email": args.owner_email,
                "owner_password": password, "pool": args.pool, "plan": args.plan,
                "isolation": "pool" if args.pool or args.pooled else "silo"}
    return {"action": f"{args.action}_tenant" if args.action != "list" else "list_tenants",
            **({"slug": args.slug} if args.action != "list" else {})}


def _print(report, command: str, action: str | None) -> int:
    if report.databases and (command == "migrate" or action == "migrate"):
        for database in report.databases:
            status = database.status if database.status in ("migrated", "at_head") else \
                f"FAILED: {database.error}"
            print(f"{','.join(database.tenants):40} {database.database:30} {database.server_id or '-':12} "
                  f"{database.seconds:6.2f}s {status}")
    if command == "migrate":
        failed = len(report.failures())
        print(f"control: ok; tenant databases: {len(report.databases) - failed} ok "
              f"({sum(d.status == 'at_head' for d in report.databases)} already at head), {failed} failed")
    if not report.ok:
        print(f"error: {report.error}", file=sys.stderr)
        return 1
    if command == "servers":
        for server in report.servers:
            print(f"{server.id:20} {server.state:9} {server.databases:6}/{server.capacity:<6} {server.url}")
    elif action == "list":
        for tenant in report.tenants:
            print(f"{tenant.slug:30} {tenant.isolation:5} {tenant.status:12} {tenant.plan:8} {tenant.id} "
                  f"{tenant.server_id or '-'}")
    elif action in ("create", "delete"):
        tenant = report.tenants[0]
        print(json.dumps({"tenant_id": tenant.id, "slug": tenant.slug, "isolation": tenant.isolation,
                          "status": tenant.status, "server": tenant.server_id, "database": tenant.database,
                          **({"owner_id": report.owner_id} if action == "create" else {})}))
    return 0


def run(args: argparse.Namespace, command: str) -> int:
    # lazy: `funnel --help` and argument parsing load this module; only a command that runs needs the database
    if command == "llm":
        from funnel.platform import llm_registry

        if args.action == "set-default":
            llm_registry.set_step_default(args.step, args.provider, args.model_class)
        for row in llm_registry.step_defaults_with_models():
            print(f"{row['step']:24} {row['provider_id']:10} {row['model_class']:9} {row['model_name']}")
        return 0
    action = getattr(args, "action", None)
    if command == "tenants" and action == "move":
        from funnel.platform import operations_move

        print(operations_move.move_tenant(args.slug, args.to, grace_seconds=args.grace_seconds)
              .model_dump_json(indent=2))
        return 0
    if command == "tenants" and action == "restore":  # here, where the archive is: no --stack
        from funnel.platform import export
        from funnel.platform.errors import FunnelError

        try:
            restored = export.restore(args.archive, args.database_url)
        except FunnelError as exc:
            print(f"error: {exc.detail}", file=sys.stderr)
            return 1
        for table in restored.tables:
            print(f"{table.name:40} {table.rows:>10} rows")
        print(json.dumps({"tenant_id": restored.tenant_id, "slug": restored.slug, "database": restored.database,
                          "created": restored.created, "revisions": restored.revisions,
                          "migrated_to": restored.migrated_to, "tables": len(restored.tables),
                          "rows": restored.rows}))
        return 0
    event = _event(args, command)
    if args.stack:
        from funnel.platform import operations_remote

        try:
            report = operations_remote.invoke(args.stack, event)
        except operations_remote.RemoteOperationFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    elif command == "migrate":  # in this process: with its progress bar
        from funnel.platform import migrations, operations

        results = migrations.migrate_all(workers=args.workers, progress=_progress)
        report = operations.migrate_all_report(results)
    else:
        from funnel.platform import operations

        report = operations.run(event)
    return _print(report, command, action)
