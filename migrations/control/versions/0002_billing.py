"""Control DB: Stripe webhook events (idempotency) and billing history per tenant.

Revision ID: c0002
"""
from alembic import op

from funnel.platform.migration_helpers import app_role

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = app_role()
    op.execute("""
    CREATE TABLE stripe_events (
        id text PRIMARY KEY,
        type text NOT NULL,
        tenant_id text REFERENCES tenants(id) ON DELETE SET NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("""
    CREATE TABLE billing_history (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        stripe_invoice_id text NOT NULL UNIQUE,
        amount integer NOT NULL,
        currency text NOT NULL DEFAULT 'jpy',
        status text NOT NULL CHECK (status IN ('paid', 'failed', 'refunded')),
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX billing_history_tenant ON billing_history (tenant_id, created_at DESC)")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON stripe_events, billing_history TO {role}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS billing_history")
    op.execute("DROP TABLE IF EXISTS stripe_events")
