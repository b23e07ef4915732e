"""Tenant DB, billing branch: the plan's usage counters (one row per tenant, metric and month).

A consuming path adds to its counter in the same transaction as what it counts, with
``UPDATE ... SET used = used + n WHERE used + n <= limit``: the row lock serialises the tenant's consumers of
that metric, so concurrent use cannot overshoot, and a refusal leaves the transaction with nothing created.
``notified_percent`` is the highest threshold (80, 100) the owners were told about this month.
Seats are counted live from ``users``; their row (``period_start`` of the month) is the lock seat creations take.

Revision ID: t0001_billing
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0001_billing"
down_revision = None
branch_labels = ("billing",)
depends_on = "t0001_platform"


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE billing_usage (
        {TENANT_ID},
        metric text NOT NULL
            CHECK (metric IN ('articles', 'form_sends', 'emails', 'shortlink_clicks', 'seats', 'llm_spend_usd')),
        period_start date NOT NULL,
        used numeric(18, 6) NOT NULL DEFAULT 0 CHECK (used >= 0),
        notified_percent integer NOT NULL DEFAULT 0 CHECK (notified_percent IN (0, 80, 100)),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, metric, period_start)
    )""")
    tenant_table("billing_usage")


def downgrade() -> None:
    drop_tables("billing_usage")
