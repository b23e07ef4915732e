"""Tenant DB, notifications branch: an outbox marker for deliveries, and inbox filter indexes.

``queued_at`` is when a delivery's message was last put on the notifications
queue. Rows written inside a caller's transaction start without it; the sweep
(``dispatch_pending``) claims exactly those (and PENDING rows queued long ago
whose message was lost), so a delivery is queued once, not on every sweep.

The inbox's category and priority filters get their own partial indexes: with
only ``idx_notification_inbox`` a rare category in a large inbox is found by
walking the whole inbox. ``idx_notification_expiring`` serves the expiry sweep.

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
    # The cleanup schedule's expiry sweep, without reading the whole table every 5 minutes.
    op.execute("CREATE INDEX idx_notification_expiring ON notifications (expiry_date) "
               "WHERE expiry_date IS NOT NULL AND archived_at IS NULL AND NOT is_deleted")
    for name, column in (("category", "notification_category"), ("priority", "priority_level")):
        op.execute(f"CREATE INDEX idx_notification_inbox_{name} ON notifications "
                   f"(tenant_id, recipient_id, {column}, created_at DESC, id DESC) "
                   f"WHERE delivery_method = 'IN_APP' AND NOT is_deleted AND archived_at IS NULL")


def downgrade() -> None:
    for name in ("outbox", "expiring", "inbox_category", "inbox_priority"):
        op.execute(f"DROP INDEX idx_notification_{name}")
    op.execute("ALTER TABLE notifications DROP COLUMN queued_at")
