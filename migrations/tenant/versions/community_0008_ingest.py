"""Tenant DB, community branch: Activity ingestion speed (placeholder).

Revision ID: t0008_community
"""

revision = "t0008_community"
down_revision = "t0007_community"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
