"""Tenant DB, outreach branch: references carry the tenant (see t0002_platform). A task's target can only
name this tenant's contact, and a neighbour deleting its contact no longer touches this tenant's rows.

Revision ID: t0002_outreach
"""
from funnel.platform.migration_helpers import Reference, references_by_id_only, references_within_tenant

revision = "t0002_outreach"
down_revision = "t0001_outreach"
branch_labels = None
depends_on = "t0002_platform"

KEYS = ("contacts", "tasks", "task_targets")
REFERENCES = (
    Reference("contacts", "user_id", "users", on_delete="SET NULL"),
    Reference("import_jobs", "user_id", "users", on_delete="SET NULL"),
    Reference("templates", "user_id", "users", on_delete="SET NULL"),
    Reference("tasks", "user_id", "users", on_delete="SET NULL"),
    Reference("tasks", "run_id", "runs", on_delete="SET NULL"),
    Reference("task_targets", "task_id", "tasks", on_delete="CASCADE", stray_rows="delete"),
    Reference("task_targets", "contact_id", "contacts", on_delete="SET NULL"),
    Reference("ai_runs", "task_target_id", "task_targets", on_delete="CASCADE", stray_rows="delete"),
    Reference("browser_jobs", "task_target_id", "task_targets", on_delete="CASCADE", stray_rows="delete"),
    Reference("browser_jobs", "user_id", "users", on_delete="SET NULL"),
    Reference("sent_history", "contact_id", "contacts", on_delete="SET NULL"),
    Reference("sent_history", "task_id", "tasks", on_delete="SET NULL"),
)


def upgrade() -> None:
    references_within_tenant(KEYS, REFERENCES)


def downgrade() -> None:
    references_by_id_only(KEYS, REFERENCES)
