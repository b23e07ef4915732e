"""Operations on the databases, as typed events: what PlatformOperationsFunction does inside the VPC (where the
databases are), what the operator's ``funnel`` commands send it with ``--stack``, and what they run in-process
without it. One service either way, so a command reports the same thing wherever it ran.

- ``migrate_all``: the control database to head, then every tenant database (in parallel worker processes),
  each one reported; a database already at head is skipped, so running it again resumes after a failure.
- ``provision_tenant`` / ``migrate_tenant`` / ``delete_tenant`` / ``list_tenants``: one tenant (sign-up calls
  ``provision_tenant``).
- ``export_tenant``: a workspace's export run (``funnel.platform.export``; the API starts it asynchronously).
- ``purge_due_deletions``: workspaces whose deletion grace period has ended are removed
  (``funnel.platform.deletion``; an hourly schedule).
- ``add_server`` / ``set_server`` / ``list_servers``: the registry of database servers tenants are placed on
  (docs/tenant-placement.md).

CloudFormation's custom resource (``PlatformMigrations``) is ``funnel.platform.operations_deploy``.
"""
from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter

from funnel import db
from funnel.platform import store_tenants
from funnel.platform.errors import Conflict, FunnelError, NotFound, ValidationFailed
from funnel.platform.tenants import DBNAME_RE, SLUG_RE

SERVER_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"


class Operation(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MigrateAll(Operation):
    action: Literal["migrate_all"]
    workers: int = Field(default=4, ge=1, le=16)


class ProvisionTenant(Operation):
    action: Literal["provision_tenant"]
    name: str = Field(min_length=1, max_length=200)
    owner_email: str = Field(min_length=3, max_length=320)
    owner_password: SecretStr = Field(min_length=1)
    slug: str | None = Field(default=None, pattern=SLUG_RE.pattern)
    isolation: Literal["silo", "pool"] = "silo"
    pool: str | None = Field(default=None, pattern=DBNAME_RE.pattern)
    plan: str = Field(default="free", min_length=1, max_length=50)
    # False for a self-service sign-up: the workspace sends nothing until its owner's address is verified.
    email_verified: bool = True


class MigrateTenant(Operation):
    action: Literal["migrate_tenant"]
    slug: str = Field(pattern=SLUG_RE.pattern)


class DeleteTenant(Operation):
    action: Literal["delete_tenant"]
    slug: str = Field(pattern=SLUG_RE.pattern)


class ListTenants(Operation):
    action: Literal["list_tenants"]


class ExportTenant(Operation):
    action: Literal["export_tenant"]
    tenant_id: str = Field(min_length=1, max_length=64)
    run_id: str = Field(min_length=1, max_length=64)


class PurgeDueDeletions(Operation):
    action: Literal["purge_due_deletions"]


class AddServer(Operation):
    action: Literal["add_server"]
    id: str = Field(pattern=SERVER_ID)
    # postgresql://host:port/?sslmode=require: no database, no user or password (they come from the secrets)
    url: str = Field(pattern=r"^postgres(ql)?://[^@/]+/?(\?.*)?$", max_length=500)
    capacity: int = Field(gt=0, le=100_000)


class SetServer(Operation):
    action: Literal["set_server"]
    id: str = Field(pattern=SERVER_ID)
    state: Literal["open", "draining"] | None = None
    capacity: int | None = Field(default=None, gt=0, le=100_000)


class ListServers(Operation):
    action: Literal["list_servers"]


Request = Annotated[MigrateAll | ProvisionTenant | MigrateTenant | DeleteTenant | ListTenants | ExportTenant
                    | PurgeDueDeletions | AddServer | SetServer | ListServers, Field(discriminator="action")]
REQUEST: TypeAdapter[Operation] = TypeAdapter(Request)


class TenantDatabaseReport(BaseModel):
    """One database's migration: ``migrated``, ``at_head`` (skipped), ``failed`` or ``not_reached``."""
    tenants: list[str]
    database: str
    server_id: str | None
    status: Literal["migrated", "at_head", "failed", "not_reached"]
    seconds: float
    error: str | None = None


class TenantReport(BaseModel):
    id: str
    slug: str
    name: str
    isolation: str
    status: str
    plan: str
    server_id: str | None
    database: str


class ServerReport(BaseModel):
    id: str
    url: str
    capacity: int
    state: str
    databases: int


class Report(BaseModel):
    """What an operation did. ``ok`` false: ``error`` says why (for ``migrate_all``: the failed databases are
    in ``databases`` with theirs)."""
    action: str
    ok: bool
    error: str | None = None
    seconds: float = 0.0
    databases: list[TenantDatabaseReport] = []
    tenants: list[TenantReport] = []
    servers: list[ServerReport] = []
    owner_id: str | None = None

    def failures(self) -> list[TenantDatabaseReport]:
        return [d for d in self.databases if d.status in ("failed", "not_reached")]


def parse(event: object) -> Operation:
    """The operation an event asks for (pydantic's ValidationError when it is not one)."""
    return REQUEST.validate_python(event)


def run(event: object, deadline: float | None = None) -> Report:
    """Run the operation ``event`` describes; a domain error (unknown tenant, taken slug, bad input) is a report
    with ``ok`` false, anything else raises. ``deadline`` (time.monotonic()) bounds ``migrate_all``."""
    from pydantic import ValidationError

    started = time.perf_counter()
    action = event.get("action", "?") if isinstance(event, dict) else "?"
    try:
        operation = parse(event)
        report = _run(operation, deadline)
    except ValidationError as exc:
        report = Report(action=str(action), ok=False, error=f"invalid {action} request: {_brief(exc)}")
    except FunnelError as exc:
        report = Report(action=str(action), ok=False, error=f"{type(exc).__name__}: {exc.detail}")
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _brief(exc) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors())


def _run(operation: Operation, deadline: float | None) -> Report:
    from funnel.platform import migrations, tenants  # lazy: alembic and provisioning serve few invocations

    if isinstance(operation, MigrateAll):
        return migrate_all_report(migrations.migrate_all(workers=operation.workers, deadline=deadline))
    if isinstance(operation, ProvisionTenant):
        migrations.prepare_control()
        tenant, owner = tenants.provision(operation.name, operation.owner_email,
                                          operation.owner_password.get_secret_value(), slug=operation.slug,
                                          pool=operation.pool, plan=operation.plan,
                                          pooled=operation.isolation == "pool",
                                          email_verified=operation.email_verified)
        return Report(action=operation.action, ok=True, tenants=[_tenant_report(_tenant_row(tenant.slug))],
                      owner_id=str(owner["id"]))
    if isinstance(operation, MigrateTenant):
        row = _tenant_row(operation.slug)
        result = migrations.migrate_one(row["database_url"], [row["slug"]], row["server_id"])
        database = _database_report(result)
        return Report(action=operation.action, ok=result.ok, error=database.error, databases=[database],
                      tenants=[_tenant_report(row)])
    if isinstance(operation, DeleteTenant):
        from funnel.platform import deletion  # lazy: serves deletions only (and reaches the Stripe SDK)

        row = deletion.purge_now(operation.slug)
        return Report(action=operation.action, ok=True, tenants=[_tenant_report({**row, "status": "deleted"})])
    if isinstance(operation, ListTenants):
        return Report(action=operation.action, ok=True, tenants=[_tenant_report(r) for r in tenants.list_tenants()])
    if isinstance(operation, ExportTenant):
        from funnel.platform import export  # lazy: serves exports only

        export.run_export(operation.tenant_id, operation.run_id)
        return Report(action=operation.action, ok=True)
    if isinstance(operation, PurgeDueDeletions):
        from funnel.platform import deletion  # lazy: serves the hourly purge only

        purged = deletion.purge_due()
        return Report(action=operation.action, ok=True, tenants=[_tenant_report(row) for row in purged])
    if isinstance(operation, AddServer):
        _add_server(operation)
        return Report(action=operation.action, ok=True, servers=_servers())
    if isinstance(operation, SetServer):
        _set_server(operation)
        return Report(action=operation.action, ok=True, servers=_servers())
    assert isinstance(operation, ListServers)
    return Report(action=operation.action, ok=True, servers=_servers())


def migrate_all_report(results: list) -> Report:
    """The report of ``migrations.migrate_all``: not ok when any database failed or was not reached, each named
    with its error."""
    databases = [_database_report(r) for r in results]
    failed = [d for d in databases if d.status in ("failed", "not_reached")]
    error = None
    if failed:
        error = f"{len(failed)} of {len(databases)} tenant databases not migrated: " + "; ".join(
            f"{','.join(d.tenants)}: {d.error}" for d in failed)
    return Report(action="migrate_all", ok=not failed, error=error, databases=databases)


def _tenant_row(slug: str) -> db.Row:
    with db.control_admin_connect() as conn:
        row = store_tenants.tenant_by_slug(conn, slug)
    if row is None:
        raise NotFound(f"no tenant {slug!r}")
    return row


def _tenant_report(row) -> TenantReport:
    return TenantReport(id=str(row["id"]), slug=row["slug"], name=row["name"], isolation=row["isolation"],
                        status=row["status"], plan=row["plan"], server_id=row.get("server_id"),
                        database=db.database_name(row["database_url"]))


def _database_report(result) -> TenantDatabaseReport:
    return TenantDatabaseReport(tenants=result.tenant_slugs, database=db.database_name(result.database_url),
                                server_id=result.server_id, status=result.status, seconds=round(result.seconds, 3),
                                error=result.error)


def _servers() -> list[ServerReport]:
    with db.control_admin_connect() as conn:
        return [ServerReport(**{k: row[k] for k in ServerReport.model_fields}) for row in store_tenants.servers(conn)]


def _add_server(operation: AddServer) -> None:
    """Register a server once it answers as the owner role and has the application role."""
    from funnel.platform import migrations

    migrations.prepare_control()
    try:
        migrations.server_reachable(operation.url)
    except Exception as exc:
        raise ValidationFailed(f"server {operation.id} at {operation.url} cannot be reached: {exc}") from exc
    migrations.ensure_app_role(operation.url)
    import psycopg

    with db.control_admin_connect() as conn:
        try:
            store_tenants.insert_server(conn, operation.id, operation.url, operation.capacity)
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"a server with id {operation.id!r} or url {operation.url!r} is registered") from exc


def _set_server(operation: SetServer) -> None:
    with db.control_admin_connect() as conn, conn.transaction():
        if store_tenants.server(conn, operation.id) is None:
            raise NotFound(f"no server {operation.id!r}")
        store_tenants.update_server(conn, operation.id, state=operation.state, capacity=operation.capacity)
        store_tenants.refresh_full_servers(conn)
