"""Control DB: ``shortlink_routes``, which tenant a shortlink's (host, key) belongs to.

``GET /s/{key}`` carries no tenant, so the redirect reads this table first (one primary-key read), then the
tenant's own ``shortlinks`` row. A key is claimed here when its link is made: unique per host, so two tenants
sharing the product's default domain ('' host) cannot both hold ``launch``; a tenant's own shortlink domain
(``system_settings.shortlink_domain``) is its own namespace. See shared/funnel/community/README-shortlinks.md.

Revision ID: c0004
"""
from alembic import op

from funnel.platform.migration_helpers import app_role

revision = "c0004"
down_revision = "c0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE shortlink_routes (
        host text NOT NULL CHECK (length(host) <= 253),
        key text NOT NULL CHECK (key ~ '^[A-Za-z0-9_-]{3,64}$'),
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        shortlink_id uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (host, key)
    )""")
    op.execute("CREATE INDEX shortlink_routes_tenant ON shortlink_routes (tenant_id)")
    op.execute(f"GRANT SELECT, INSERT, DELETE ON shortlink_routes TO {app_role()}")


def downgrade() -> None:
    op.execute("DROP TABLE shortlink_routes")
