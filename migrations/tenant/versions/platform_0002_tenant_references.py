"""Tenant DB, platform branch: references carry the tenant. ``UNIQUE (tenant_id, id)`` on users and runs
(which every area's references point at: the areas' revisions after this one depend on it), and the
platform's own references as composite keys, so a pooled tenant's row cannot point at a neighbour's.

Revision ID: t0002_platform
"""
from funnel.platform.migration_helpers import Reference, references_by_id_only, references_within_tenant

revision = "t0002_platform"
down_revision = "t0001_platform"
branch_labels = None
depends_on = None

KEYS = ("users", "runs")
REFERENCES = (
    Reference("api_keys", "created_by", "users"),
    Reference("runs", "created_by", "users"),
    Reference("steps", "run_id", "runs", on_delete="CASCADE", stray_rows="delete"),
    Reference("artifacts", "run_id", "runs", on_delete="CASCADE", stray_rows="delete"),
)


def upgrade() -> None:
    references_within_tenant(KEYS, REFERENCES)


def downgrade() -> None:
    references_by_id_only(KEYS, REFERENCES)
