"""PostgreSQL access: connection pools, the control DB, and tenant transactions.

Tenancy rule (DESIGN.md): every tenant-DB table carries ``tenant_id`` with a Row
Level Security policy on ``current_setting('app.tenant_id')``. The only way
this package hands out a tenant connection is :func:`tenant_transaction`, which
sets that variable for the transaction (``set_config(..., true)``), so a query
that forgets its WHERE clause still sees one tenant's rows only. The
application role neither owns the tables nor is a superuser, so RLS binds it.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from funnel.platform.errors import NotFound
from funnel.platform.secrets import get_secret
from funnel.settings import get_settings

# Every connection this package hands out returns rows as dicts (column name -> value).
Connection = psycopg.Connection[DictRow]
Row = DictRow
"""One row as the store modules return it: column name -> value (psycopg's dict rows)."""


def fetch_one(cursor: psycopg.Cursor[Row]) -> Row:
    """The row of a statement that always returns one (INSERT ... RETURNING, an aggregate, an UPDATE of a
    row the transaction has locked): its absence is a bug, not a NotFound."""
    row = cursor.fetchone()
    assert row is not None, "the statement returned no row"
    return row


_pools: dict[str, ConnectionPool[Connection]] = {}
_pools_lock = threading.Lock()


def with_credentials(url: str, user: str | None, password: str | None = None) -> str:
    """Return ``url`` with its user/password replaced (tenant URLs are stored without secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    if user:
        auth = quote(user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        netloc = f"{auth}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def strip_credentials(url: str) -> str:
    return with_credentials(url, None)


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def replace_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _app_credentials() -> tuple[str | None, str | None]:
    settings = get_settings()
    if settings.db_app_secret_id:
        secret = get_secret(settings.db_app_secret_id)
        return secret["username"], secret["password"]
    parts = urlsplit(settings.control_database_url)
    return parts.username, parts.password


def admin_url(dbname: str | None = None) -> str:
    settings = get_settings()
    url = settings.admin_database_url
    if settings.db_admin_secret_id:
        secret = get_secret(settings.db_admin_secret_id)
        url = with_credentials(url, secret["username"], secret["password"])
    return replace_database(url, dbname) if dbname else url


def app_url(database_url: str) -> str:
    """The URL the application role uses for a database stored without credentials."""
    user, password = _app_credentials()
    return with_credentials(database_url, user, password)


# A pooled connection idle for longer than this is pinged before use (RDS Proxy and NAT
# gateways drop idle connections); a busy one is not, which saves a round trip per request.
IDLE_CHECK_SECONDS = 30.0
_last_used: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()


def _remember_use(conn: Connection) -> None:
    _last_used[conn] = time.monotonic()


def _check_if_idle(conn: Connection) -> None:
    if time.monotonic() - _last_used.get(conn, 0.0) > IDLE_CHECK_SECONDS:
        ConnectionPool.check_connection(conn)


def _pool(url: str) -> ConnectionPool[Connection]:
    pool = _pools.get(url)
    if pool is not None:
        return pool
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            pool = ConnectionPool(
                url, connection_class=Connection, min_size=1, max_size=get_settings().db_pool_max_size,
                kwargs={"row_factory": dict_row, "autocommit": False},
                check=_check_if_idle, reset=_remember_use, open=True, name=database_name(url),
            )
            _pools[url] = pool
    return pool


def close_pools() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


@contextmanager
def control_transaction() -> Iterator[Connection]:
    """A transaction on the control DB as the application role."""
    settings = get_settings()
    with _pool(app_url(strip_credentials(settings.control_database_url))).connection() as conn:
        with conn.transaction():
            yield conn


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    slug: str
    database_url: str
    isolation: str
    status: str
    plan: str
    subscription_status: str
    # Whether the owner proved their e-mail address (sign-up's link); an unverified workspace sends nothing.
    email_verified: bool = True


class TenantDirectory:
    """Tenant id -> Tenant (its row in the control DB's ``tenants``), cached in-process for a short time
    (warm Lambdas skip the lookup); ``funnel.platform.tenants`` provisions and lists tenants."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, Tenant]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str) -> Tenant:
        now = time.monotonic()
        hit = self._cache.get(tenant_id)
        if hit and hit[0] > now:
            return hit[1]
        with control_transaction() as conn:
            row = conn.execute(
                "SELECT id, name, slug, database_url, isolation, status, plan, subscription_status, "
                "email_verified_at IS NOT NULL AS email_verified FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
        if row is None or row["status"] == "deleted":
            raise NotFound("tenant not found")
        tenant = Tenant(**row)
        with self._lock:
            self._cache[tenant_id] = (now + get_settings().tenant_directory_ttl_seconds, tenant)
        return tenant

    def by_slug(self, slug: str) -> Tenant:
        with control_transaction() as conn:
            row = conn.execute("SELECT id FROM tenants WHERE slug = %s AND status <> 'deleted'", (slug,)).fetchone()
        if row is None:
            raise NotFound("tenant not found")
        return self.get(row["id"])

    def forget(self, tenant_id: str | None = None) -> None:
        with self._lock:
            if tenant_id is None:
                self._cache.clear()
            else:
                self._cache.pop(tenant_id, None)


directory = TenantDirectory()


@contextmanager
def tenant_transaction(tenant_id: str, *, snapshot: bool = False) -> Iterator[Connection]:
    """A transaction on the tenant's database with ``app.tenant_id`` set for RLS.

    ``snapshot``: a read-only REPEATABLE READ transaction, for answers assembled from several queries that must
    agree with each other (under READ COMMITTED each statement sees the rows committed before it started, so a
    row committed half way through would be in one part of the answer and missing from another)."""
    record = directory.get(tenant_id)
    with _pool(app_url(record.database_url)).connection() as conn:
        with conn.transaction():
            if snapshot:  # before any query: the transaction's snapshot is taken by its first one
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
            yield conn


def admin_connect(dbname: str | None = None, autocommit: bool = True) -> Connection:
    """A one-off connection as the owner role (migrations, provisioning)."""
    return Connection.connect(admin_url(dbname), autocommit=autocommit, row_factory=dict_row)


def control_admin_connect() -> Connection:
    """A one-off autocommit connection to the control DB as the owner role: provisioning (which also creates
    databases) and the operator commands, where each write stands on its own."""
    return admin_connect(database_name(get_settings().control_database_url))
