"""Tenant DB, community branch: Identity match keys as btree rows (placeholder, filled by the identity work).

Revision ID: t0005_community
"""

revision = "t0005_community"
down_revision = "t0004_community"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
