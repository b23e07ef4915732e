"""Tenant DB, email branch: references carry the tenant (see t0002_platform). A recipient's contact_id
can only name this tenant's contact; a neighbour deleting its contact no longer nulls this tenant's
``email_messages.contact_id``.

Revision ID: t0004_email
"""
from funnel.platform.migration_helpers import Reference, references_by_id_only, references_within_tenant

revision = "t0004_email"
down_revision = "t0003_email"
branch_labels = None
depends_on = ("t0002_platform", "t0002_outreach")

KEYS = ("smtp_profiles", "email_campaigns", "email_messages")
REFERENCES = (
    Reference("email_campaigns", "user_id", "users", on_delete="SET NULL"),
    Reference("email_campaigns", "task_id", "tasks", on_delete="SET NULL"),
    Reference("email_campaigns", "smtp_profile_id", "smtp_profiles", on_delete="SET NULL"),
    Reference("email_messages", "campaign_id", "email_campaigns", on_delete="CASCADE", stray_rows="delete"),
    Reference("email_messages", "contact_id", "contacts", on_delete="SET NULL"),
    Reference("email_events", "email_message_id", "email_messages", on_delete="CASCADE", stray_rows="delete"),
)


def upgrade() -> None:
    references_within_tenant(KEYS, REFERENCES)


def downgrade() -> None:
    references_by_id_only(KEYS, REFERENCES)
