"""SQL conventions shared by every tenant-DB migration (all product areas).

- ``TENANT_ID`` is the column every tenant table starts with; its default is the
  transaction's tenant, so inserts cannot land in another tenant by omission.
- ``tenant_table(name)`` turns on RLS (forced, so even the owner is bound in
  application sessions), adds the isolation policy and grants DML to the
  application role, which owns nothing.
"""
from __future__ import annotations

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
