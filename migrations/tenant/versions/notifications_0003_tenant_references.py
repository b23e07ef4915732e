"""Tenant DB, notifications branch: references carry the tenant (see t0002_platform). A notification's
recipient or sender and a channel's user can only be this tenant's user.

Revision ID: t0003_notifications
"""
from funnel.platform.migration_helpers import Reference, references_by_id_only, references_within_tenant

revision = "t0003_notifications"
down_revision = "t0002_notifications"
branch_labels = None
depends_on = "t0002_platform"

KEYS: tuple[str, ...] = ()
REFERENCES = (
    Reference("notifications", "recipient_id", "users", on_delete="RESTRICT", on_update="CASCADE", stray_rows="delete"),
    Reference("notifications", "sender_id", "users", on_delete="SET NULL", on_update="CASCADE"),
    # NULL would make it the workspace channel
    Reference("notification_channels", "user_id", "users", on_delete="CASCADE", stray_rows="delete"),
)


def upgrade() -> None:
    references_within_tenant(KEYS, REFERENCES)


def downgrade() -> None:
    references_by_id_only(KEYS, REFERENCES)
