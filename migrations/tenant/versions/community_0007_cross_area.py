"""Tenant DB, community branch: One identity across the product (placeholder).

Revision ID: t0007_community
"""

revision = "t0007_community"
down_revision = "t0006_community"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
