"""Run the two alembic environments programmatically.

``migrate_all`` upgrades the control DB, then every tenant database in parallel worker processes (alembic keeps
per-process global state, so threads would collide; each worker is a forked process reporting through a pipe,
which works in Lambda too, where multiprocessing's queues and pools cannot run for want of /dev/shm), or one
after another in this process with ``workers=1``. A database already at every head is skipped, so a rerun after
a failure resumes; a failing tenant is reported with its error and does not stop the others.

Tenant databases may live on several servers (``database_servers`` in the control DB): a tenant's URL names its
server, and the owner role's credentials (the same on every server, from its secret) are added to it.
"""

from __future__ import annotations

import functools
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from pathlib import Path
from urllib.parse import urlsplit

from psycopg import sql
from psycopg.rows import dict_row

from funnel import db
from funnel.platform.secrets import get_secret
from funnel.settings import get_settings

# The alembic environments ship inside the package as ``funnel.migrations`` (the top-level
# migrations/ folder, mapped by setup.py): found through the package wherever it is installed
# (a checkout's editable install, the Lambda layer's /opt/python, the browser image).
MIGRATIONS_DIR = Path(str(files("funnel.migrations")))


def _sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def run(env: str, url: str, action: str, target: str) -> None:
    """Run alembic ``action`` ("upgrade"/"downgrade") to ``target`` in ``env`` ("control"/"tenant") on ``url``."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, pool

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR / env))
    engine = create_engine(_sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, action)(config, target)
    finally:
        engine.dispose()


def upgrade_control() -> None:
    run("control", db.admin_url(db.database_name(get_settings().control_database_url)), "upgrade", "head")


def owner_url(database_url: str) -> str:
    """``database_url`` (stored without credentials, on whichever server) as the owner role."""
    admin = urlsplit(db.admin_url())
    return db.with_credentials(database_url, admin.username, admin.password)


def owner_connect(database_url: str, autocommit: bool = True) -> db.Connection:
    """A one-off connection to ``database_url`` as the owner role."""
    return db.Connection.connect(owner_url(database_url), autocommit=autocommit, row_factory=dict_row)


def server_database_url(server_url: str | None, dbname: str) -> str:
    """The URL of database ``dbname`` on a server (None: the control database's server), without credentials."""
    if server_url is None:
        return db.replace_database(db.strip_credentials(get_settings().control_database_url), dbname)
    return db.replace_database(server_url, dbname)


def upgrade_tenant_database(database_url: str) -> None:
    """Upgrade one tenant (or pooled) database to every area's head."""
    run("tenant", owner_url(database_url), "upgrade", "heads")


@functools.cache
def _tenant_scripts():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR / "tenant"))
    return ScriptDirectory.from_config(config)


def tenant_heads() -> set[str]:
    """The head of every area branch of the tenant migrations."""
    return set(_tenant_scripts().get_heads())


def is_at_heads(current: set[str]) -> bool:
    """Whether a database at ``current`` (what its alembic_version holds: alembic leaves out a head that another
    one depends on) has every head applied."""
    if not current:
        return False
    scripts = _tenant_scripts()
    try:
        applied = {revision.revision for revision in scripts.iterate_revisions(tuple(current), "base")}
    except Exception:  # a revision this code does not know (a newer release migrated it): not ours to judge
        return False
    return tenant_heads() <= applied


def current_revisions(database_url: str) -> set[str]:
    """The revisions a database is at (empty: never migrated)."""
    with owner_connect(database_url) as conn:
        if conn.execute("SELECT to_regclass('public.alembic_version') AS t").fetchone()["t"] is None:  # type: ignore[index]
            return set()
        return {row["version_num"] for row in conn.execute("SELECT version_num FROM alembic_version")}


def ensure_app_role(server_url: str | None = None) -> None:
    """Create the application role (LOGIN, NOSUPERUSER, owns nothing) when missing, on the control database's
    server or on ``server_url`` (roles belong to a server, so each one needs it)."""
    settings = get_settings()
    role = settings.app_db_role
    password = None
    if settings.db_app_secret_id:
        password = get_secret(settings.db_app_secret_id)["password"]
    with server_admin_connect(server_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
                         .format(sql.Identifier(role)))
        if password:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))


def server_admin_connect(server_url: str | None) -> db.Connection:
    """An autocommit owner connection to a server's maintenance database (None: the control database's server)."""
    if server_url is None:
        return db.admin_connect()
    return owner_connect(db.replace_database(server_url, db.database_name(get_settings().admin_database_url)))


def ensure_database(dbname: str, server_url: str | None = None) -> bool:
    """Create a database owned by the admin role (on ``server_url``, default the control database's server);
    True when it was created."""
    with server_admin_connect(server_url) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return True


def server_reachable(server_url: str) -> None:
    """Connect to a server as the owner role (raises when it cannot be reached)."""
    with server_admin_connect(server_url) as conn:
        conn.execute("SELECT 1")


def prepare_control() -> None:
    """Role, control database and its schema: everything needed before the first tenant."""
    ensure_app_role()
    ensure_database(db.database_name(get_settings().control_database_url))
    upgrade_control()


@dataclass
class TenantMigrationResult:
    database_url: str
    tenant_slugs: list[str]
    ok: bool
    seconds: float
    error: str | None = None
    # "migrated", "at_head" (nothing to do: skipped), "failed", or "not_reached" (the deadline came first)
    status: str = "migrated"
    server_id: str | None = None


def _upgrade_one(database_url: str) -> tuple[str, float, str | None]:
    started = time.perf_counter()
    try:
        if is_at_heads(current_revisions(database_url)):
            return "at_head", time.perf_counter() - started, None
        upgrade_tenant_database(database_url)
        return "migrated", time.perf_counter() - started, None
    except Exception as exc:  # reported per tenant; the others go on
        return "failed", time.perf_counter() - started, f"{type(exc).__name__}: {exc}"


def _in_child(pipe: Pipe, database_url: str) -> None:
    try:
        pipe.send(_upgrade_one(database_url))
    finally:
        pipe.close()


def migrate_one(database_url: str, tenant_slugs: list[str], server_id: str | None = None) -> TenantMigrationResult:
    """One tenant (or pooled) database to head, in this process (skipped when it is at head already)."""
    status, seconds, error = _upgrade_one(database_url)
    return TenantMigrationResult(database_url, tenant_slugs, status != "failed", seconds, error, status, server_id)


def tenant_databases() -> list[tuple[str, str | None, list[str]]]:
    """Every database holding a tenant that is not deleted: (url, server id, slugs)."""
    from funnel.platform import store_tenants

    with db.control_admin_connect() as conn:
        return [(row["database_url"], row["server_id"], list(row["slugs"]))
                for row in store_tenants.tenant_databases(conn)]


def migrate_all(workers: int = 4, progress: Callable[[int, int, TenantMigrationResult], None] | None = None,
                deadline: float | None = None) -> list[TenantMigrationResult]:
    """Control database to head, then every tenant database; ``deadline`` (a ``time.monotonic()`` value): no
    database is started after it (those are ``not_reached``; a rerun resumes where this one stopped)."""
    prepare_control()
    databases = {url: (server_id, slugs) for url, server_id, slugs in tenant_databases()}
    results: list[TenantMigrationResult] = []
    if not databases:
        return results
    _tenant_scripts()  # loaded once, before the workers fork

    def record(url: str, status: str, seconds: float, error: str | None) -> None:
        server_id, slugs = databases[url]
        result = TenantMigrationResult(url, slugs, status in ("migrated", "at_head"), seconds, error, status,
                                       server_id)
        results.append(result)
        if progress:
            progress(len(results), len(databases), result)

    def past_deadline() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    todo = list(databases)
    if workers <= 1:  # in this process, one at a time (what a process with running threads needs: no fork)
        for url in todo:
            if past_deadline():
                record(url, "not_reached", 0.0, "not started before the time limit; run again to resume")
                continue
            record(url, *_upgrade_one(url))
        return sorted(results, key=lambda r: r.tenant_slugs[0])
    context = multiprocessing.get_context("fork")
    running: dict[Pipe, tuple[str, multiprocessing.context.ForkProcess]] = {}
    while todo or running:
        while todo and len(running) < workers and not past_deadline():
            url = todo.pop(0)
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_in_child, args=(sender, url), daemon=True)
            process.start()
            sender.close()
            running[receiver] = (url, process)
        if past_deadline():
            for url in todo:
                record(url, "not_reached", 0.0, "not started before the time limit; run again to resume")
            todo = []
        if not running:
            break
        for ready in wait(list(running)):
            assert isinstance(ready, Pipe)
            url, process = running.pop(ready)
            try:
                outcome = ready.recv()
            except EOFError:  # the worker died without answering (killed, out of memory)
                outcome = ("failed", 0.0, "the migration process ended without a result")
            ready.close()
            process.join()
            record(url, *outcome)
    return sorted(results, key=lambda r: r.tenant_slugs[0])
