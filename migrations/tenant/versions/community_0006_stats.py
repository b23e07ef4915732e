"""Tenant DB, community branch: Rollup state for developer_stats / campaign_stats, saved segments (placeholder).

Revision ID: t0006_community
"""

revision = "t0006_community"
down_revision = "t0005_community"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
