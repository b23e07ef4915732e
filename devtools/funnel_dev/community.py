"""`funnel community resolve ACCOUNTS.jsonl [--json] [--database-url URL]`

Loads accounts (one JSON object a line: key, provider, external_user_id, handle, email, display_name, org,
profile_url, attributes) into a throwaway tenant database through the product's identity resolution
(``funnel.community.identity.resolve_accounts``, the code the API, CSV imports and plugin webhooks use) and prints
``{"developers": [{"developer_id", "accounts": [keys]}], "suggestions": [{"developers": [id, id], "confidence",
"evidence"}]}``. Every input key is in exactly one developer.

The database is a scratch database, created and dropped: on its own temporary PostgreSQL (the system's binaries,
as the tests start one), or on the server of ``--database-url`` (an owner's URL, e.g.
``postgresql://postgres@127.0.0.1:5432/postgres``). A dev and evaluation tool: it is not part of the product's
deployed artifact.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HELP = "community tools: resolve identities of accounts from a JSONL file"
USAGE_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    resolve = sub.add_parser("resolve", help="resolve accounts (JSONL) into developers and merge suggestions")
    resolve.add_argument("accounts", metavar="ACCOUNTS.jsonl")
    resolve.add_argument("--json", action="store_true", help="print one JSON object")
    resolve.add_argument("--database-url", help="owner URL of a PostgreSQL server to use instead of a temporary one")


def _read(path: Path) -> list[dict[str, Any]]:
    lines = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            if not isinstance(item, dict) or not all(item.get(k) not in (None, "") for k in
                                                     ("key", "provider", "external_user_id")):
                raise ValueError(f"line {number}: key, provider and external_user_id are required")
            lines.append(item)
    return lines


@contextmanager
def server(database_url: str | None) -> Iterator[str]:
    if database_url:
        yield database_url
        return
    from funnel_dev.ports import free_port
    from funnel_dev.postgres import LocalPostgres

    with tempfile.TemporaryDirectory(prefix="funnel-resolve-") as state:
        os.chmod(state, 0o755)  # the server runs as its own user when this runs as root
        server = LocalPostgres(Path(state) / "pg", free_port(), tuned_for_tests=True).start()
        try:
            yield server.url()
        finally:
            server.stop()


@contextmanager
def scratch_tenant(admin_url: str) -> Iterator[Any]:
    """A migrated scratch database and a connection to it as the application role with a tenant set (one
    transaction, dropped with the database)."""
    from psycopg.rows import dict_row

    from funnel import db, settings
    from funnel.platform import migrations

    os.environ["FUNNEL_ADMIN_DATABASE_URL"] = admin_url
    settings.reset_settings()
    dbname = f"funnel_resolve_{uuid.uuid4().hex[:10]}"
    migrations.ensure_app_role()
    migrations.ensure_database(dbname)
    try:
        migrations.run("tenant", db.admin_url(dbname), "upgrade", "heads")
        with db.Connection.connect(_as_app_role(admin_url, dbname), row_factory=dict_row) as conn:
            with conn.transaction():
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(uuid.uuid4()),))
                yield conn
    finally:
        db.close_pools()
        with db.admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def _as_app_role(admin_url: str, dbname: str) -> str:
    from funnel import db, settings

    role = settings.get_settings().app_db_role
    return db.with_credentials(db.strip_credentials(db.replace_database(admin_url, dbname)), role, None)


def resolve(accounts: list[dict[str, Any]], conn: Any) -> dict[str, Any]:
    from funnel.community import identity

    items = [identity.AccountIn(provider=str(a["provider"]), external_user_id=str(a["external_user_id"]),
                                handle=a.get("handle"), email=a.get("email"), display_name=a.get("display_name"),
                                org=a.get("org"), profile_url=a.get("profile_url"),
                                attributes=a.get("attributes") or {}) for a in accounts]
    identity.resolve_in_chunks(conn, items)
    key_of = {}
    for item, line in zip(items, accounts, strict=True):
        key_of.setdefault(item.key, []).append(str(line["key"]))
    developers = []
    for developer_id, account_keys in identity.developers_with_accounts(conn).items():
        keys = [k for account in account_keys for k in key_of.get(account, [])]
        if keys:
            developers.append({"developer_id": str(developer_id), "accounts": keys})
    suggestions = [{"developers": [str(s["developer_id"]), str(s["other_developer_id"])],
                    "confidence": float(s["confidence"]), "evidence": s["evidence"]}
                   for s in identity.open_suggestions(conn)]
    return {"developers": developers, "suggestions": suggestions}


def run(args: argparse.Namespace, command: str) -> int:
    try:
        accounts = _read(Path(args.accounts))
    except (OSError, ValueError) as exc:
        print(f"funnel community resolve: {exc}", file=sys.stderr)
        return USAGE_ERROR
    with server(args.database_url) as admin_url, scratch_tenant(admin_url) as conn:
        result = resolve(accounts, conn)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{len(accounts)} accounts -> {len(result['developers'])} developers, "
              f"{len(result['suggestions'])} suggestions")
        for s in result["suggestions"]:
            print(f"  {s['confidence']:.2f}  {s['developers'][0]} ~ {s['developers'][1]}: "
                  + "; ".join(e["detail"] for e in s["evidence"]))
    return 0
