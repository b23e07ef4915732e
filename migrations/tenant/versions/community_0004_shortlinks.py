"""Tenant DB, community branch: what a shortlink needs beyond seed 002's columns.

- ``enabled``: a disabled link answers 404 (never a redirect) and keeps its history;
- ``redirect_status``: 302 (the default: browsers do not cache it, so a target can change) or 301;
- ``host``: the host the key was claimed on (the tenant's ``system_settings.shortlink_domain`` when the link was
  made, '' for the product's default domain), so a link's URL does not move when the setting changes;
- ``updated_at``.
UTM attributes live in the seed's ``attributes`` (``{"utm_source": ..., ...}``). The (host, key) -> tenant
route the redirect reads first is in the control DB (control revision c0004): see
shared/funnel/community/README-shortlinks.md.

Revision ID: t0004_community
"""
from alembic import op

revision = "t0004_community"
down_revision = "t0003_community"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE shortlinks
        ADD COLUMN enabled boolean NOT NULL DEFAULT true,
        ADD COLUMN redirect_status smallint NOT NULL DEFAULT 302 CHECK (redirect_status IN (301, 302)),
        ADD COLUMN host text NOT NULL DEFAULT '' CHECK (length(host) <= 253),
        ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()""")
    # the redirect's anonymous-id lookups, each a partial index so neither walks the other's rows (a returning
    # visitor's hundreds of anonymous clicks): has this anon id been seen with a developer, and which of its
    # activities are still anonymous?
    op.execute("CREATE INDEX activities_anon_known ON activities (tenant_id, anon_id, occurred_at DESC) "
               "WHERE anon_id IS NOT NULL AND developer_id IS NOT NULL")
    op.execute("CREATE INDEX activities_anon_unknown ON activities (tenant_id, anon_id) "
               "WHERE anon_id IS NOT NULL AND developer_id IS NULL")


def downgrade() -> None:
    op.execute("DROP INDEX activities_anon_known, activities_anon_unknown")
    op.execute("ALTER TABLE shortlinks DROP COLUMN enabled, DROP COLUMN redirect_status, DROP COLUMN host, "
               "DROP COLUMN updated_at")
