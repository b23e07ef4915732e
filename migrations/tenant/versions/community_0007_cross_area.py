"""Tenant DB, community branch: one identity across the product (issue #16, item 5).

- ``activities.org_id``: an activity of an organization rather than of a person (an outreach form submitted to
  one of its companies, an e-mail click from a company mailbox such as ``info@``). Such a row has no developer,
  account or anonymous id; a reference that carries the tenant like every other (``ON DELETE SET NULL (org_id)``
  keeps the activity when the organization goes, as the developer reference does). Indexed for the organization's
  timeline and for the first-touch funnel, which reads an organization's touches for its developers.
- No column on ``email_campaigns`` or ``tasks``: the DRM campaign an e-mail campaign or an outreach task names is
  the ``campaign_id`` of its resource (category ``email_campaign`` / ``outreach_task``, ``external_id`` its id),
  which attribution already follows (shared/funnel/community/README-identity-across.md).

Revision ID: t0007_community
"""
from alembic import op

revision = "t0007_community"
down_revision = "t0006_community"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE activities ADD COLUMN org_id uuid, ADD CONSTRAINT activities_org_id_fkey "
               "FOREIGN KEY (tenant_id, org_id) REFERENCES organizations (tenant_id, org_id) "
               "ON DELETE SET NULL (org_id)")
    op.execute("CREATE INDEX idx_activities_tenant_org ON activities (tenant_id, org_id, occurred_at DESC) "
               "WHERE org_id IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX idx_activities_tenant_org")
    op.execute("ALTER TABLE activities DROP CONSTRAINT activities_org_id_fkey, DROP COLUMN org_id")
