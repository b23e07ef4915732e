"""Tenant DB, email branch: each tracking event remembers the reminder round the recipient had
received when it happened (0 = the first mail), for per-round stats; each message remembers when
its last mail (first or reminder) went out, for the rolling sending limits and machine-click timing.

Revision ID: t0002_email
"""
from alembic import op

revision = "t0002_email"
down_revision = "t0001_email"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE email_events ADD COLUMN reminder_round integer NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE email_messages ADD COLUMN last_sent_at timestamptz")
    op.execute("UPDATE email_messages SET last_sent_at = sent_at")
    op.execute("CREATE INDEX email_messages_last_sent ON email_messages (tenant_id, last_sent_at) "
               "WHERE last_sent_at IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX email_messages_last_sent")
    op.execute("ALTER TABLE email_messages DROP COLUMN last_sent_at")
    op.execute("ALTER TABLE email_events DROP COLUMN reminder_round")
