"""Tenant DB, email branch: ``email_send_slots``, the rolling-window log of sends that the per-tenant
sending limits (per second, per 24 hours) count. A slot is taken in its own short transaction under the
tenant's advisory lock, so concurrent senders never wait on each other's SES or SMTP call.

Revision ID: t0003_email
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0003_email"
down_revision = "t0002_email"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE email_send_slots (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        {TENANT_ID},
        taken_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX email_send_slots_window ON email_send_slots (tenant_id, taken_at)")
    tenant_table("email_send_slots")


def downgrade() -> None:
    drop_tables("email_send_slots")
