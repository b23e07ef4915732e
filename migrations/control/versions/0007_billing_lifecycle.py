"""Control DB: the Stripe subscription's life cycle (issue #19).

- ``tenants.stripe_price_id``: the price the subscription is on (a plan change sends the new one to Stripe).
- ``tenants.cancel_at_period_end`` / ``trial_end``: a cancellation asked for (the subscription works until
  ``current_period_end``, and can be resumed until then) and the end of a Stripe trial.
- ``tenants.past_due_since``: the first failed payment of a past_due subscription; the grace period
  (``billing_past_due_grace_days``) counts from it, then sending and generation stop.
- ``tenants.subscription_event_at``: the ``created`` time of the last Stripe event applied to the tenant's
  subscription: an older event arriving later (Stripe does not deliver in order) changes nothing.
- ``billing_history.refunded_amount`` (charge.refunded), its Stripe links (``hosted_invoice_url``,
  ``invoice_pdf``) and the charge and payment intent that paid it (a refund names the charge, not the invoice).

Revision ID: c0007
"""
from alembic import op

revision = "c0007"
down_revision = "c0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tenants ADD COLUMN stripe_price_id text, "
               "ADD COLUMN cancel_at_period_end boolean NOT NULL DEFAULT false, ADD COLUMN trial_end timestamptz, "
               "ADD COLUMN past_due_since timestamptz, ADD COLUMN subscription_event_at timestamptz")
    op.execute("UPDATE tenants SET past_due_since = updated_at WHERE subscription_status = 'past_due'")
    op.execute("ALTER TABLE billing_history ADD COLUMN refunded_amount integer NOT NULL DEFAULT 0, "
               "ADD COLUMN hosted_invoice_url text, ADD COLUMN invoice_pdf text, ADD COLUMN stripe_charge_id text, "
               "ADD COLUMN stripe_payment_intent_id text")
    op.execute("CREATE INDEX billing_history_charge ON billing_history (stripe_charge_id) "
               "WHERE stripe_charge_id IS NOT NULL")
    op.execute("CREATE INDEX billing_history_payment_intent ON billing_history (stripe_payment_intent_id) "
               "WHERE stripe_payment_intent_id IS NOT NULL")
    # the invoices' pages are keyset pages over (created_at, id), newest first
    op.execute("DROP INDEX IF EXISTS billing_history_tenant")
    op.execute("CREATE INDEX billing_history_tenant ON billing_history (tenant_id, created_at DESC, id DESC)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS billing_history_tenant")
    op.execute("CREATE INDEX billing_history_tenant ON billing_history (tenant_id, created_at DESC)")
    op.execute("DROP INDEX IF EXISTS billing_history_payment_intent")
    op.execute("DROP INDEX IF EXISTS billing_history_charge")
    op.execute("ALTER TABLE billing_history DROP COLUMN refunded_amount, DROP COLUMN hosted_invoice_url, "
               "DROP COLUMN invoice_pdf, DROP COLUMN stripe_charge_id, DROP COLUMN stripe_payment_intent_id")
    op.execute("ALTER TABLE tenants DROP COLUMN stripe_price_id, DROP COLUMN cancel_at_period_end, "
               "DROP COLUMN trial_end, DROP COLUMN past_due_since, DROP COLUMN subscription_event_at")
