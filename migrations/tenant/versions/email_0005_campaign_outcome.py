"""Tenant DB, email branch: a campaign ends visibly. Once none of its messages waits, a campaign is ``sent`` (none
failed), ``partial`` (some sent, some failed) or ``failed`` (none sent), with ``error`` saying how many failed and
why; ``updated_at`` is when it last changed (status, error, attachments). ``email_messages.attempted_at`` is when a
sender last took a still queued message up: the stalled-campaign sweep fails the queued messages of a sending
campaign that no sender has touched for a while (records lost in the queue or left in its DLQ). A failed message
always says why.

Revision ID: t0005_email
"""
from alembic import op

revision = "t0005_email"
down_revision = "t0004_email"
branch_labels = None
depends_on = None

STATUSES_BEFORE = "'draft', 'scheduled', 'sending', 'sent', 'cancelled'"
NO_REASON = "failed (no reason was recorded)"


def _rows_of_every_tenant(table: str, statement: str) -> None:
    """FORCE binds the table owner to RLS too and a migration has no ``app.tenant_id``: lifted for this statement
    (inside the migration's transaction), as ``references_within_tenant`` does."""
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(statement)
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    op.execute("ALTER TABLE email_campaigns ADD COLUMN error text")
    op.execute("ALTER TABLE email_campaigns ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()")
    op.execute("ALTER TABLE email_campaigns DROP CONSTRAINT email_campaigns_status_check")
    op.execute(f"ALTER TABLE email_campaigns ADD CONSTRAINT email_campaigns_status_check "
               f"CHECK (status IN ({STATUSES_BEFORE}, 'partial', 'failed'))")
    op.execute("ALTER TABLE email_messages ADD COLUMN attempted_at timestamptz")
    _rows_of_every_tenant("email_messages", f"UPDATE email_messages SET error = '{NO_REASON}' "
                                            f"WHERE status = 'failed' AND error IS NULL")
    op.execute("ALTER TABLE email_messages ADD CONSTRAINT email_messages_failed_has_reason "
               "CHECK (status <> 'failed' OR error IS NOT NULL)")


def downgrade() -> None:
    op.execute("ALTER TABLE email_messages DROP CONSTRAINT email_messages_failed_has_reason")
    op.execute("ALTER TABLE email_messages DROP COLUMN attempted_at")
    # Before this revision a campaign with nothing left to send was 'sent', whatever became of its messages.
    _rows_of_every_tenant("email_campaigns", "UPDATE email_campaigns SET status = 'sent' "
                                             "WHERE status IN ('partial', 'failed')")
    op.execute("ALTER TABLE email_campaigns DROP CONSTRAINT email_campaigns_status_check")
    op.execute(f"ALTER TABLE email_campaigns ADD CONSTRAINT email_campaigns_status_check "
               f"CHECK (status IN ({STATUSES_BEFORE}))")
    op.execute("ALTER TABLE email_campaigns DROP COLUMN updated_at")
    op.execute("ALTER TABLE email_campaigns DROP COLUMN error")
