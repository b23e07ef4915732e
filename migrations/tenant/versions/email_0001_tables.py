"""Tenant DB, email branch (seed 000): email_campaigns, email_messages, email_events.
Suppressions are the outreach do-not-contact list (one list for both).

Revision ID: t0001_email
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0001_email"
down_revision = None
branch_labels = ("email",)
depends_on = ("t0001_platform", "t0001_outreach")

TABLES = ("email_events", "email_messages", "email_campaigns", "smtp_profiles")


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE smtp_profiles (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        name text NOT NULL,
        host text NOT NULL,
        port integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
        username text,
        password_encrypted text,
        starttls boolean NOT NULL DEFAULT true,
        from_address text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(f"""
    CREATE TABLE email_campaigns (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        user_id uuid REFERENCES users(id) ON DELETE SET NULL,
        task_id uuid REFERENCES tasks(id) ON DELETE SET NULL,
        name text NOT NULL,
        subject text NOT NULL,
        body text NOT NULL,
        from_name text NOT NULL,
        from_address text NOT NULL,
        sender_identity text NOT NULL,
        reminder_strategy jsonb,
        attachment_urls jsonb NOT NULL DEFAULT '[]'::jsonb,
        smtp_profile_id uuid REFERENCES smtp_profiles(id) ON DELETE SET NULL,
        status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'scheduled', 'sending', 'sent', 'cancelled')),
        send_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(f"""
    CREATE TABLE email_messages (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        campaign_id uuid NOT NULL REFERENCES email_campaigns(id) ON DELETE CASCADE,
        contact_id uuid REFERENCES contacts(id) ON DELETE SET NULL,
        email citext NOT NULL,
        name text,
        company text,
        status text NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'sent', 'suppressed', 'bounced', 'complained', 'failed', 'cancelled')),
        reminder_sent integer NOT NULL DEFAULT 0,
        tracking_token text,
        provider_message_id text,
        error text,
        sent_at timestamptz,
        next_reminder_at timestamptz,
        UNIQUE (campaign_id, email)
    )""")
    op.execute("CREATE INDEX email_messages_campaign ON email_messages (campaign_id, status)")
    op.execute("CREATE INDEX email_messages_sent ON email_messages (tenant_id, sent_at) WHERE sent_at IS NOT NULL")
    op.execute("CREATE INDEX email_messages_reminders ON email_messages (next_reminder_at) "
               "WHERE next_reminder_at IS NOT NULL")
    op.execute(f"""
    CREATE TABLE email_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        {TENANT_ID},
        email_message_id uuid NOT NULL REFERENCES email_messages(id) ON DELETE CASCADE,
        type text NOT NULL CHECK (type IN ('open', 'click', 'unsubscribe', 'delivery', 'bounce', 'complaint')),
        url text,
        user_agent text,
        ip text,
        is_machine boolean NOT NULL DEFAULT false,
        detail jsonb,
        dedup_key text,
        occurred_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, dedup_key)
    )""")
    op.execute("CREATE INDEX email_events_message ON email_events (email_message_id, type)")
    for table in TABLES:
        tenant_table(table)


def downgrade() -> None:
    drop_tables(*TABLES)
