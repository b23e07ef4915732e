"""Tenant DB, notifications branch: an outbox marker for deliveries.

``queued_at`` is when a delivery's message was last put on the notifications
queue. Rows written inside a caller's transaction start without it; the sweep
(``dispatch_pending``) claims exactly those (and PENDING rows queued long ago
whose message was lost), so a delivery is queued once, not on every sweep.

Revision ID: t0002_notifications
"""
from alembic import op

revision = "t0002_notifications"
down_revision = "t0001_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE notifications ADD COLUMN queued_at timestamptz")
    # Deliveries written before this column existed were queued when they were written (or are swept once more).
    op.execute("UPDATE notifications SET queued_at = created_at WHERE delivery_method <> 'IN_APP'")
    op.execute("CREATE INDEX idx_notification_outbox ON notifications (tenant_id, created_at) "
               "WHERE delivery_status = 'PENDING' AND delivery_method <> 'IN_APP' AND NOT is_deleted")


def downgrade() -> None:
    op.execute("DROP INDEX idx_notification_outbox")
    op.execute("ALTER TABLE notifications DROP COLUMN queued_at")
