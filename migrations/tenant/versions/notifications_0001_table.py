"""Tenant DB, notifications branch: notification history (seed 004, TRN_Notification) and the
channels (Slack incoming webhooks, signed generic webhooks) deliveries go to.

Revision ID: t0001_notifications
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0001_notifications"
down_revision = None
branch_labels = ("notifications",)
depends_on = "t0001_platform"

TABLES = ("notification_channels", "notifications")


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE notifications (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        batch_id uuid,
        notification_id varchar(50) NOT NULL,
        title varchar(200),
        message text,
        action_label varchar(50),
        action_url varchar(500),
        archived_at timestamptz,
        delivered_at timestamptz,
        delivery_method text NOT NULL DEFAULT 'IN_APP'
            CHECK (delivery_method IN ('IN_APP', 'EMAIL', 'SLACK', 'WEBHOOK')),
        delivery_status text NOT NULL DEFAULT 'PENDING'
            CHECK (delivery_status IN ('PENDING', 'RETRYING', 'DELIVERED', 'FAILED', 'CANCELLED')),
        device_type text CHECK (device_type IN ('WEB', 'MOBILE', 'DESKTOP', 'API', 'OTHER')),
        error_message text,
        expiry_date date,
        external_message_id varchar(100),
        ip_address varchar(45),
        is_bulk_notification boolean NOT NULL DEFAULT false,
        last_retry_at timestamptz,
        max_retry_count integer NOT NULL DEFAULT 3 CHECK (max_retry_count BETWEEN 0 AND 10),
        message_format text NOT NULL DEFAULT 'PLAIN' CHECK (message_format IN ('PLAIN', 'HTML', 'MARKDOWN')),
        notification_category varchar(50) NOT NULL DEFAULT 'system'
            CHECK (notification_category ~ '^[a-z][a-z0-9_.]{{0,49}}$'),
        notification_type text NOT NULL DEFAULT 'INFO'
            CHECK (notification_type IN ('INFO', 'SUCCESS', 'WARNING', 'ERROR', 'REMINDER', 'APPROVAL', 'ALERT')),
        personalization_data jsonb,
        priority_level text NOT NULL DEFAULT 'NORMAL' CHECK (priority_level IN ('LOW', 'NORMAL', 'HIGH', 'URGENT')),
        read_at timestamptz,
        read_status text NOT NULL DEFAULT 'UNREAD' CHECK (read_status IN ('UNREAD', 'READ')),
        recipient_id uuid NOT NULL REFERENCES users(id) ON UPDATE CASCADE ON DELETE RESTRICT,
        related_entity_id varchar(50),
        related_entity_type varchar(50) CHECK (related_entity_type ~ '^[a-z][a-z0-9_]{{0,49}}$'),
        retry_count integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
        sender_id uuid REFERENCES users(id) ON UPDATE CASCADE ON DELETE SET NULL,
        sent_at timestamptz,
        template_id varchar(50),
        template_variables jsonb,
        user_agent varchar(500),
        is_deleted boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by varchar(50),
        updated_by varchar(50),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT uk_notification_id UNIQUE (tenant_id, notification_id),
        CONSTRAINT chk_retry_count CHECK (retry_count <= max_retry_count),
        CONSTRAINT chk_read_after_sent CHECK (read_at IS NULL OR sent_at IS NULL OR read_at >= sent_at),
        CONSTRAINT chk_archived_after_read CHECK (archived_at IS NULL OR read_at IS NULL OR archived_at >= read_at),
        CONSTRAINT chk_read_status CHECK ((read_status = 'READ') = (read_at IS NOT NULL))
    )""")
    for name, columns in (("recipient_id", "recipient_id"), ("sender_id", "sender_id"),
                          ("notification_type", "notification_type"),
                          ("notification_category", "notification_category"), ("priority_level", "priority_level"),
                          ("delivery_method", "delivery_method"), ("delivery_status", "delivery_status"),
                          ("read_status", "read_status"), ("sent_at", "sent_at"), ("batch_id", "batch_id"),
                          ("related_entity", "related_entity_type, related_entity_id"),
                          ("recipient_unread", "recipient_id, read_status, expiry_date"),
                          ("tenant_id", "tenant_id")):
        op.execute(f"CREATE INDEX idx_notification_{name} ON notifications ({columns})")
    # The inbox: a user's visible in-app notifications, newest first (keyset pagination).
    op.execute("CREATE INDEX idx_notification_inbox ON notifications "
               "(tenant_id, recipient_id, created_at DESC, id DESC) "
               "WHERE delivery_method = 'IN_APP' AND NOT is_deleted AND archived_at IS NULL")
    op.execute("CREATE INDEX idx_notification_unread ON notifications "
               "(tenant_id, recipient_id, created_at DESC, id DESC) "
               "WHERE delivery_method = 'IN_APP' AND read_status = 'UNREAD' AND NOT is_deleted AND archived_at IS NULL")
    op.execute(f"""
    CREATE TABLE notification_channels (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        kind text NOT NULL CHECK (kind IN ('SLACK', 'WEBHOOK')),
        user_id uuid REFERENCES users(id) ON DELETE CASCADE,
        url_encrypted text NOT NULL,
        signing_secret_encrypted text,
        is_active boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE UNIQUE INDEX notification_channels_one_per_scope ON notification_channels "
               "(tenant_id, kind, coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid))")
    for table in TABLES:
        tenant_table(table)


def downgrade() -> None:
    drop_tables(*TABLES)
