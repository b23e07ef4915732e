"""Control DB: the registry of database servers and pooled databases, and which server each tenant lives on.

``database_servers``: one row per PostgreSQL server (in AWS its RDS Proxy endpoint) that tenant databases are
placed on. ``url`` is where the server is reached, with no database and never a user or password (credentials
come from the secrets, the same for every server); ``capacity`` is how many databases it may hold (a silo
tenant's database, or one pooled database, each count one); ``state`` is ``open`` (placement may use it),
``full`` (at capacity: set and lifted by placement itself) or ``draining`` (an operator's: nothing new is
placed there and its tenants are moved off with ``funnel tenants move``).

``tenant_pools``: the pooled databases, each on one server, with the most tenants it may take.

``tenants.server_id``: the server a tenant's database is on. ``tenants.database_url`` stays the URL the
application connects to (the server's URL with the tenant's database): placement and ``funnel tenants move``
write both in one statement.

The server the control database is on is registered as ``primary`` (every tenant so far lives there).
See docs/tenant-placement.md.

Revision ID: c0005
"""
import sqlalchemy as sa
from alembic import op

from funnel.platform.migration_helpers import app_role

revision = "c0005"
down_revision = "c0004"
branch_labels = None
depends_on = None

# What the primary server starts with (docs/tenant-placement.md: the scale path); operators change it with
# `funnel servers set --capacity`.
PRIMARY_CAPACITY = 1000
POOL_MAX_TENANTS = 1000


def _primary_url() -> str:
    from funnel import db
    from funnel.settings import get_settings

    return db.replace_database(db.strip_credentials(get_settings().control_database_url), "")


def upgrade() -> None:
    role = app_role()
    op.execute("""
    CREATE TABLE database_servers (
        id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
        url text NOT NULL UNIQUE CHECK (url ~ '^postgres(ql)?://[^@/]+/?(\\?.*)?$'),
        capacity integer NOT NULL CHECK (capacity > 0),
        state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'full', 'draining')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("""
    CREATE TABLE tenant_pools (
        database_name text PRIMARY KEY CHECK (database_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
        server_id text NOT NULL REFERENCES database_servers(id),
        max_tenants integer NOT NULL CHECK (max_tenants > 0),
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(sa.text("INSERT INTO database_servers (id, url, capacity) VALUES ('primary', :url, :capacity)")
               .bindparams(url=_primary_url(), capacity=PRIMARY_CAPACITY))
    op.execute("ALTER TABLE tenants ADD COLUMN server_id text REFERENCES database_servers(id)")
    op.execute("UPDATE tenants SET server_id = 'primary'")
    op.execute("ALTER TABLE tenants ALTER COLUMN server_id SET NOT NULL")
    op.execute("CREATE INDEX tenants_server ON tenants (server_id) WHERE status <> 'deleted'")
    op.execute(sa.text(
        "INSERT INTO tenant_pools (database_name, server_id, max_tenants) "
        "SELECT DISTINCT substring(database_url from '^[^?]*/([^/?]+)'), 'primary', :limit FROM tenants "
        "WHERE isolation = 'pool'").bindparams(limit=POOL_MAX_TENANTS))
    # The application role reads where a tenant lives (the directory); only the owner role places tenants.
    op.execute(f"GRANT SELECT ON database_servers, tenant_pools TO {role}")


def downgrade() -> None:
    op.execute("ALTER TABLE tenants DROP COLUMN server_id")
    op.execute("DROP TABLE tenant_pools")
    op.execute("DROP TABLE database_servers")
