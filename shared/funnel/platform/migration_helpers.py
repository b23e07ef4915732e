"""SQL conventions shared by every tenant-DB migration (all product areas).

- ``TENANT_ID`` is the column every tenant table starts with; its default is the
  transaction's tenant, so inserts cannot land in another tenant by omission.
- ``tenant_table(name)`` turns on RLS (forced, so even the owner is bound in
  application sessions), adds the isolation policy and grants DML to the
  application role, which owns nothing.
- A reference between tenant tables is ``(tenant_id, column) REFERENCES t (tenant_id, id)``
  (``Reference``, ``references_within_tenant``), never a bare id.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from alembic import op

from funnel.settings import get_settings

TENANT_ID = "tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id', true)"
TENANT_PREDICATE = "tenant_id = current_setting('app.tenant_id', true)"


def app_role() -> str:
    return get_settings().app_db_role


def tenant_table(table: str) -> None:
    role = app_role()
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")


def run_environment() -> None:
    """The body of both alembic ``env.py`` files: migrate on the connection handed in by
    ``funnel.platform.migrations.run`` (or on ``sqlalchemy.url`` when alembic is run by hand)."""
    from alembic import context
    from sqlalchemy import create_engine, pool

    connection = context.config.attributes.get("connection")
    if connection is None:
        url = context.config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("alembic was run with neither a connection nor sqlalchemy.url")
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as connection:
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def drop_tables(*tables: str) -> None:
    for table in tables:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")



# References between tenant tables carry the tenant (t0002_platform and the areas' revisions after it).
# PostgreSQL checks foreign keys without row-level security, so a one-column key would let a pooled tenant
# point at a neighbour's row (and a neighbour's delete cascade or SET NULL into this tenant's rows);
# ``(tenant_id, column) REFERENCES t (tenant_id, id)`` cannot match a row of another tenant.

@dataclass(frozen=True)
class Reference:
    """``table.column`` references ``referenced.id`` with these actions (as the first revisions declared)."""
    table: str
    column: str
    referenced: str
    on_delete: str | None = None
    on_update: str | None = None
    # What the upgrade does to a row already pointing into another tenant: "unlink" sets the column to
    # NULL; "delete" removes the row (a required reference, or one whose NULL means something else).
    stray_rows: Literal["unlink", "delete"] = "unlink"

    @property
    def constraint(self) -> str:
        # PostgreSQL's own name for the one-column key, kept for the composite one (the API reads the
        # key's columns, not its name, to say which field was wrong: funnel.api.problems).
        return f"{self.table}_{self.column}_fkey"

    def actions(self, *, composite: bool) -> str:
        on_delete = self.on_delete
        if composite and on_delete == "SET NULL":
            on_delete = f"SET NULL ({self.column})"  # PostgreSQL 15+: a bare SET NULL would null tenant_id too
        return (f" ON DELETE {on_delete}" if on_delete else "") + (f" ON UPDATE {self.on_update}"
                                                                   if self.on_update else "")


def tenant_key_name(table: str) -> str:
    return f"{table}_tenant_id_id_key"


def _force_row_security(tables: Iterable[str], force: bool) -> None:
    for table in dict.fromkeys(tables):
        op.execute(f"ALTER TABLE {table} {'' if force else 'NO '}FORCE ROW LEVEL SECURITY")


def references_within_tenant(keys: Iterable[str], references: Iterable[Reference]) -> None:
    """Add ``UNIQUE (tenant_id, id)`` to each of ``keys``, then turn each reference into a composite one.

    Rows that already point into another tenant (possible before these keys) were never valid and are
    cleaned first, as each reference's ``stray_rows`` says. FORCE binds the
    table owner to RLS too and a migration has no ``app.tenant_id``, so it is lifted for that cleanup
    (inside the migration's transaction)."""
    for table in keys:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {tenant_key_name(table)} UNIQUE (tenant_id, id)")
    for ref in references:
        op.execute(f"ALTER TABLE {ref.table} DROP CONSTRAINT {ref.constraint}")
        _force_row_security((ref.table, ref.referenced), False)
        foreign = (f"{ref.column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {ref.referenced} r "
                   f"WHERE r.id = {ref.table}.{ref.column} AND r.tenant_id = {ref.table}.tenant_id)")
        op.execute(f"UPDATE {ref.table} SET {ref.column} = NULL WHERE {foreign}" if ref.stray_rows == "unlink"
                   else f"DELETE FROM {ref.table} WHERE {foreign}")
        _force_row_security((ref.table, ref.referenced), True)
        op.execute(f"ALTER TABLE {ref.table} ADD CONSTRAINT {ref.constraint} FOREIGN KEY (tenant_id, {ref.column}) "
                   f"REFERENCES {ref.referenced} (tenant_id, id)" + ref.actions(composite=True))


def references_by_id_only(keys: Iterable[str], references: Iterable[Reference]) -> None:
    """The downgrade of ``references_within_tenant``: the one-column keys the first revisions created."""
    for ref in references:
        op.execute(f"ALTER TABLE {ref.table} DROP CONSTRAINT {ref.constraint}")
        op.execute(f"ALTER TABLE {ref.table} ADD CONSTRAINT {ref.constraint} FOREIGN KEY ({ref.column}) "
                   f"REFERENCES {ref.referenced} (id)" + ref.actions(composite=False))
    for table in keys:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {tenant_key_name(table)}")
