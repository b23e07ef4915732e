"""``funnel tenants move SLUG --to SERVER``: a silo tenant's database to another database server.

1. Checks: the tenant is an active silo tenant (a pooled tenant shares its database: moving a pool is moving
   each of its tenants' rows, not offered here), the target server is open and has room.
2. Writes stop: the source database is set ``default_transaction_read_only`` and every session on it is ended,
   so each new one (the application's pools reconnect) can read but any write fails with SQLSTATE 25006
   ``read_only_sql_transaction`` until the move ends; reads go on the whole time.
3. ``pg_dump --format=custom | pg_restore --single-transaction --exit-on-error`` into a new database of the same
   name on the target (as the owner role; the application role is created there first; ``--no-owner``: the
   target's owner role owns what it restores). The forced row-level security binds the owner role too when it
   is no superuser (RDS's master user is not), and pg_dump would then see no row (or refuse): for the dump the
   source's tables are ``NO FORCE`` (the application role stays bound: RLS itself stays enabled, and it owns
   nothing), and the target's get their ``FORCE`` back once restored. A database-level ``app.tenant_id`` would
   need a superuser, and ``PGOPTIONS`` does not pass RDS Proxy.
4. Verify: the row count of every table, source against target, the tenant set in both transactions, and the
   same tables forced. Any difference (or any failure before the switch) drops the target database and puts
   the source back as it was, writable: the tenant stays where it was.
5. Switch: ``tenants.server_id`` and ``database_url`` in one statement; new connections go to the target.
6. The source stays, read-only, for ``grace_seconds`` (default: the tenant directory's cache time), so a process
   that still has the old place cached reads consistent data rather than a dropped database; then it is dropped.

The client tools come with PostgreSQL (``postgresql-client``; the newest installed ``/usr/lib/postgresql/*/bin``
or the ones on PATH). Run it from a host that reaches both servers (in AWS: inside the VPC).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel

from funnel import db
from funnel.platform import migrations, store_tenants, tenants
from funnel.platform.errors import Conflict, NotFound
from funnel.settings import get_settings


class MoveReport(BaseModel):
    slug: str
    database: str
    from_server: str
    to_server: str
    rows: dict[str, int]
    writes_refused_seconds: float
    seconds: float


def client_tool(name: str) -> str:
    """``pg_dump`` / ``pg_restore`` of the newest PostgreSQL installed (it must not be older than the servers)."""
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    found = versions[-1] if versions else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} was not found: install PostgreSQL's client tools (postgresql-client)")
    return found


def _owner_conninfo(database_url: str) -> tuple[str, dict[str, str]]:
    """A URL with the owner role's user and, apart (never on a command line), its password."""
    admin = urlsplit(db.admin_url())
    env = {**os.environ}
    if admin.password:
        env["PGPASSWORD"] = admin.password
    return db.with_credentials(database_url, admin.username), env


def copy_database(source_url: str, target_url: str) -> None:
    """``pg_dump | pg_restore`` of one database into an empty one."""
    source, env = _owner_conninfo(source_url)
    target, _ = _owner_conninfo(target_url)
    with tempfile.TemporaryFile() as dump_errors:
        dump = subprocess.Popen([client_tool("pg_dump"), "--format=custom", "--dbname", source],
                                stdout=subprocess.PIPE, stderr=dump_errors, env=env)
        assert dump.stdout is not None
        try:
            restore = subprocess.run([client_tool("pg_restore"), "--no-owner", "--exit-on-error",
                                      "--single-transaction", "--dbname", target],
                                     stdin=dump.stdout, capture_output=True, env=env, timeout=6 * 3600)
        finally:
            dump.stdout.close()
            dumped = dump.wait()
        dump_errors.seek(0)
        if dumped != 0:
            raise RuntimeError(f"pg_dump failed: {dump_errors.read().decode(errors='replace')[-2000:]}")
    if restore.returncode != 0:
        raise RuntimeError(f"pg_restore failed: {restore.stderr.decode(errors='replace')[-2000:]}")


def row_counts(database_url: str, tenant_id: str) -> dict[str, int]:
    with migrations.owner_connect(database_url, autocommit=False) as conn, conn.transaction():
        store_tenants.set_transaction_tenant(conn, tenant_id)
        return store_tenants.table_row_counts(conn)


def _checked_move(slug: str, to_server: str) -> tuple[db.Row, db.Row]:
    with db.control_admin_connect() as conn:
        tenant = store_tenants.tenant_by_slug(conn, slug)
        if tenant is None:
            raise NotFound(f"no tenant {slug!r}")
        target = store_tenants.server(conn, to_server)
    if target is None:
        raise NotFound(f"no server {to_server!r}")
    if tenant["isolation"] != "silo":
        raise Conflict(f"{slug} is a pooled tenant: its database is shared, only silo tenants move")
    if tenant["status"] != "active":
        raise Conflict(f"{slug} is {tenant['status']}, not active")
    if tenant["server_id"] == target["id"]:
        raise Conflict(f"{slug} is on {to_server} already")
    if target["state"] != "open" or target["databases"] >= target["capacity"]:
        raise Conflict(f"server {to_server} takes no database now ({target['state']}, "
                       f"{target['databases']}/{target['capacity']})")
    return tenant, target


def move_tenant(slug: str, to_server: str, grace_seconds: float | None = None,
                sleep: Callable[[float], None] = time.sleep) -> MoveReport:
    """Move a silo tenant's database to ``to_server`` (see the module's docstring for how)."""
    started = time.monotonic()
    tenant, target = _checked_move(slug, to_server)
    tenant_id, dbname = str(tenant["id"]), db.database_name(tenant["database_url"])
    source_url = tenant["database_url"]
    source_server_url = db.replace_database(source_url, "")
    target_url = migrations.server_database_url(target["url"], dbname)
    migrations.ensure_app_role(target["url"])
    if not migrations.ensure_database(dbname, target["url"]):
        raise Conflict(f"database {dbname} exists on server {to_server} already")
    refused_from = time.monotonic()
    forced: list[str] = []
    try:
        with migrations.server_admin_connect(source_server_url) as admin:
            store_tenants.set_database_read_only(admin, dbname, True)
            store_tenants.terminate_sessions(admin, dbname)
        tenants.directory.forget(tenant_id)
        with migrations.owner_connect(source_url) as conn:
            forced = store_tenants.forced_rls_tables(conn)
            store_tenants.set_forced_rls(conn, forced, False)
        copy_database(source_url, target_url)
        with migrations.owner_connect(target_url) as conn:
            store_tenants.set_forced_rls(conn, forced, True)
            forced_there = store_tenants.forced_rls_tables(conn)
        if forced_there != forced:
            missing = sorted(set(forced) - set(forced_there))
            raise RuntimeError(f"row-level security is not forced on the copy of {', '.join(missing)}")
        before, after = row_counts(source_url, tenant_id), row_counts(target_url, tenant_id)
        if before != after:
            differing = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
            raise RuntimeError(f"the copy differs from the source in {', '.join(differing)}")
        with db.control_admin_connect() as conn, conn.transaction():
            store_tenants.lock_placement(conn)
            store_tenants.switch_server(conn, tenant_id, target["id"], target_url)
            store_tenants.refresh_full_servers(conn)
    except BaseException:
        with migrations.owner_connect(source_url) as conn:
            store_tenants.set_forced_rls(conn, forced, True)
        with migrations.server_admin_connect(source_server_url) as admin:
            store_tenants.set_database_read_only(admin, dbname, False)
        tenants.drop_database(dbname, target["url"])
        raise
    refused = time.monotonic() - refused_from
    tenants.directory.forget(tenant_id)
    sleep(get_settings().tenant_directory_ttl_seconds if grace_seconds is None else grace_seconds)
    tenants.drop_database(dbname, source_server_url)
    return MoveReport(slug=slug, database=dbname, from_server=tenant["server_id"], to_server=target["id"],
                      rows=after, writes_refused_seconds=round(refused, 3),
                      seconds=round(time.monotonic() - started, 3))
