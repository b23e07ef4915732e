"""Run the two alembic environments programmatically.

``migrate_all`` upgrades the control DB, then every tenant database in parallel
worker processes (alembic keeps per-process global state, so threads would
collide), or one after another in this process with ``workers=1``; a failing tenant is reported with its
error and does not stop the others.
"""
from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from psycopg import sql

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


def upgrade_tenant_database(database_url: str) -> None:
    """Upgrade one tenant (or pooled) database to every area's head."""
    run("tenant", db.admin_url(db.database_name(database_url)), "upgrade", "heads")


def ensure_app_role() -> None:
    """Create the application role (LOGIN, NOSUPERUSER, owns nothing) when missing."""
    settings = get_settings()
    role = settings.app_db_role
    password = None
    if settings.db_app_secret_id:
        password = get_secret(settings.db_app_secret_id)["password"]
    with db.admin_connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
                         .format(sql.Identifier(role)))
        if password:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))


def ensure_database(dbname: str) -> bool:
    """Create a database owned by the admin role; True when it was created."""
    with db.admin_connect() as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return True


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


def _upgrade_one(database_url: str) -> tuple[bool, float, str | None]:
    started = time.perf_counter()
    try:
        upgrade_tenant_database(database_url)
        return True, time.perf_counter() - started, None
    except Exception as exc:  # reported per tenant; the others go on
        return False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"


def migrate_all(workers: int = 4, progress: Callable[[int, int, TenantMigrationResult], None] | None = None
                ) -> list[TenantMigrationResult]:
    prepare_control()
    databases: dict[str, list[str]] = {}
    with db.admin_connect(db.database_name(get_settings().control_database_url)) as conn:
        for row in conn.execute("SELECT slug, database_url FROM tenants WHERE status <> 'deleted' ORDER BY slug"):
            databases.setdefault(row["database_url"], []).append(row["slug"])
    results: list[TenantMigrationResult] = []
    if not databases:
        return results
    if workers <= 1:  # in this process, one at a time (what a process with running threads needs: no fork)
        for url, slugs in databases.items():
            result = TenantMigrationResult(url, slugs, *_upgrade_one(url))
            results.append(result)
            if progress:
                progress(len(results), len(databases), result)
        return sorted(results, key=lambda r: r.tenant_slugs[0])
    context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(databases))), mp_context=context) as pool:
        futures = {pool.submit(_upgrade_one, url): url for url in databases}
        for future in as_completed(futures):
            url = futures[future]
            ok, seconds, error = future.result()
            result = TenantMigrationResult(url, databases[url], ok, seconds, error)
            results.append(result)
            if progress:
                progress(len(results), len(databases), result)
    return sorted(results, key=lambda r: r.tenant_slugs[0])
