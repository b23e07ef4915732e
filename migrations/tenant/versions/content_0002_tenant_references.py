"""Tenant DB, content branch: references carry the tenant (see t0002_platform).

Revision ID: t0002_content
"""
from funnel.platform.migration_helpers import Reference, references_by_id_only, references_within_tenant

revision = "t0002_content"
down_revision = "t0001_content"
branch_labels = None
depends_on = "t0002_platform"

KEYS = ("sites", "products", "article_clusters", "articles", "schedules")
REFERENCES = (
    Reference("sites", "user_id", "users", on_delete="SET NULL"),
    Reference("products", "user_id", "users", on_delete="SET NULL"),
    Reference("products", "site_id", "sites", on_delete="SET NULL"),
    Reference("article_clusters", "product_id", "products", on_delete="CASCADE", stray_rows="delete"),
    Reference("article_clusters", "run_id", "runs", on_delete="SET NULL"),
    Reference("articles", "cluster_id", "article_clusters", on_delete="CASCADE", stray_rows="delete"),
    Reference("generated_images", "article_id", "articles", on_delete="CASCADE", stray_rows="delete"),
    Reference("schedules", "user_id", "users", on_delete="SET NULL"),
    Reference("schedules", "site_id", "sites", on_delete="CASCADE", stray_rows="delete"),
    Reference("schedules", "product_id", "products", on_delete="CASCADE", stray_rows="delete"),
    Reference("schedule_jobs", "schedule_id", "schedules", on_delete="CASCADE", stray_rows="delete"),
    Reference("schedule_jobs", "run_id", "runs", on_delete="SET NULL"),
)


def upgrade() -> None:
    references_within_tenant(KEYS, REFERENCES)


def downgrade() -> None:
    references_by_id_only(KEYS, REFERENCES)
