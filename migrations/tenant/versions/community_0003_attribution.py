"""Tenant DB, community branch: ``attribution_settings``, the workspace's choice of how conversions are attributed
to campaigns (one row per tenant; none means the defaults of funnel.community.campaigns).

Why a table and not campaign attributes: which actions convert (signup, api_call...), the model, the time-decay
half-life and the lookback window are one choice for the whole workspace (a conversion's weights are shared out
between all the campaigns that touched it, so campaigns cannot each have their own model), and the scheduled
rollups recompute with it. ``system_settings`` is the platform's table; areas do not share tables.

Revision ID: t0003_community
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0003_community"
down_revision = "t0002_community"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE attribution_settings (
        {TENANT_ID} PRIMARY KEY,
        model text NOT NULL DEFAULT 'last_touch'
            CHECK (model IN ('first_touch', 'last_touch', 'linear', 'time_decay')),
        half_life_days numeric NOT NULL DEFAULT 7 CHECK (half_life_days > 0 AND half_life_days <= 3650),
        lookback_days integer NOT NULL DEFAULT 30 CHECK (lookback_days BETWEEN 1 AND 3650),
        conversion_actions text[] NOT NULL DEFAULT '{{signup}}'
            CHECK (cardinality(conversion_actions) BETWEEN 1 AND 50),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    tenant_table("attribution_settings")


def downgrade() -> None:
    drop_tables("attribution_settings")
