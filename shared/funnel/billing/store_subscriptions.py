"""Data access of billing, in the control DB: the tenant's subscription columns (``tenants``), the Stripe
events processed (``stripe_events``) and the invoices (``billing_history``).

The rules (return URLs, status mapping, one processing per event id, event order, the grace period, the 402
gate) stay in ``subscriptions`` and ``limits``. Every function takes a ``funnel.db.control_transaction()``
connection.
"""
from __future__ import annotations

from datetime import datetime

from funnel.db import Connection, Row
from funnel.platform.pagination import Page, keyset_page

INVOICE_COLUMNS = ("id, stripe_invoice_id, amount, currency, status, refunded_amount, hosted_invoice_url, "
                   "invoice_pdf, created_at")


# ---------------------------------------------------------------- tenants
def subscription_standing(conn: Connection, tenant_id: str) -> Row | None:
    """``subscription_status, past_due_since``; None when the tenant is unknown."""
    return conn.execute("SELECT subscription_status, past_due_since FROM tenants WHERE id = %s",
                        (tenant_id,)).fetchone()


def lock_customer_id(conn: Connection, tenant_id: str) -> Row | None:
    """``stripe_customer_id`` (null before the first checkout), ``stripe_subscription_id`` and
    ``subscription_status``, the tenant's row locked; None when unknown."""
    return conn.execute("SELECT stripe_customer_id, stripe_subscription_id, subscription_status FROM tenants "
                        "WHERE id = %s FOR UPDATE", (tenant_id,)).fetchone()


def set_customer_id(conn: Connection, tenant_id: str, customer_id: str) -> None:
    conn.execute("UPDATE tenants SET stripe_customer_id = %s, updated_at = now() WHERE id = %s",
                 (customer_id, tenant_id))


def tenant_exists(conn: Connection, tenant_id: str) -> bool:
    return conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is not None


def tenant_of_customer(conn: Connection, customer_id: str) -> str | None:
    row = conn.execute("SELECT id FROM tenants WHERE stripe_customer_id = %s", (customer_id,)).fetchone()
    return None if row is None else str(row["id"])


def subscription_of(conn: Connection, tenant_id: str) -> Row | None:
    """``stripe_customer_id, stripe_subscription_id, subscription_status, stripe_price_id`` (a plan change, a
    cancellation, the portal); None when the tenant is unknown."""
    return conn.execute("SELECT stripe_customer_id, stripe_subscription_id, subscription_status, stripe_price_id "
                        "FROM tenants WHERE id = %s", (tenant_id,)).fetchone()


def lock_subscription_clock(conn: Connection, tenant_id: str) -> Row | None:
    """``stripe_subscription_id, subscription_status, subscription_event_at, past_due_since``, the tenant's row
    locked: two deliveries about one tenant are applied one after the other, each seeing the other's clock."""
    return conn.execute("SELECT stripe_subscription_id, subscription_status, subscription_event_at, past_due_since "
                        "FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,)).fetchone()


def record_checkout(conn: Connection, tenant_id: str, customer_id: str | None, subscription_id: str | None,
                    event_at: datetime) -> None:
    """A completed checkout: its subscription, and its customer unless the tenant has one. A new subscription
    after a canceled one is ``incomplete`` until its own events arrive (``canceled`` is final for the old one)."""
    conn.execute("UPDATE tenants SET stripe_customer_id = coalesce(stripe_customer_id, %s), "
                 "subscription_status = CASE WHEN stripe_subscription_id IS DISTINCT FROM %s "
                 "AND subscription_status = 'canceled' THEN 'incomplete' ELSE subscription_status END, "
                 "stripe_subscription_id = %s, subscription_event_at = greatest(subscription_event_at, %s), "
                 "updated_at = now() WHERE id = %s",
                 (customer_id, subscription_id, subscription_id, event_at, tenant_id))


def set_subscription(conn: Connection, tenant_id: str, *, subscription_id: str | None, status: str, plan: str,
                     price_id: str | None, current_period_end: datetime | None, cancel_at_period_end: bool,
                     trial_end: datetime | None, past_due_since: datetime | None, event_at: datetime) -> None:
    conn.execute("UPDATE tenants SET stripe_subscription_id = %s, subscription_status = %s, plan = %s, "
                 "stripe_price_id = %s, current_period_end = %s, cancel_at_period_end = %s, trial_end = %s, "
                 "past_due_since = %s, subscription_event_at = %s, updated_at = now() WHERE id = %s",
                 (subscription_id, status, plan, price_id, current_period_end, cancel_at_period_end, trial_end,
                  past_due_since, event_at, tenant_id))


def set_payment_standing(conn: Connection, tenant_id: str, *, status: str, past_due_since: datetime | None,
                         event_at: datetime) -> None:
    """An invoice's outcome moving the subscription (active <-> past_due), on the same clock as its events."""
    conn.execute("UPDATE tenants SET subscription_status = %s, past_due_since = %s, subscription_event_at = %s, "
                 "updated_at = now() WHERE id = %s", (status, past_due_since, event_at, tenant_id))


def billing_summary(conn: Connection, tenant_id: str) -> Row | None:
    """The tenant's subscription columns and ``has_customer``; None when the tenant is unknown."""
    return conn.execute("SELECT plan, subscription_status, current_period_end, cancel_at_period_end, trial_end, "
                        "past_due_since, stripe_price_id AS price_id, stripe_customer_id IS NOT NULL AS has_customer "
                        "FROM tenants WHERE id = %s", (tenant_id,)).fetchone()


# ---------------------------------------------------------------- Stripe events, invoices
def record_event(conn: Connection, event_id: str, event_type: str, tenant_id: str | None) -> bool:
    """Whether the event id is new (False: it was processed before, nothing is recorded)."""
    return conn.execute("INSERT INTO stripe_events (id, type, tenant_id) VALUES (%s, %s, %s) "
                        "ON CONFLICT (id) DO NOTHING RETURNING id", (event_id, event_type, tenant_id)
                        ).fetchone() is not None


def upsert_invoice(conn: Connection, tenant_id: str, *, invoice_id: str, amount: int, currency: str,
                   status: str, hosted_invoice_url: str | None, invoice_pdf: str | None, charge_id: str | None,
                   payment_intent_id: str | None) -> None:
    """Record the invoice once; a later event about it moves its status forward only (failed -> paid ->
    refunded: a late payment_failed never turns a paid invoice back) and fills in what it did not know."""
    conn.execute(
        "INSERT INTO billing_history (tenant_id, stripe_invoice_id, amount, currency, status, hosted_invoice_url, "
        "invoice_pdf, stripe_charge_id, stripe_payment_intent_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (stripe_invoice_id) DO UPDATE SET "
        "status = CASE WHEN array_position(ARRAY['failed', 'paid', 'refunded'], EXCLUDED.status) "
        "> array_position(ARRAY['failed', 'paid', 'refunded'], billing_history.status) "
        "THEN EXCLUDED.status ELSE billing_history.status END, "
        "amount = CASE WHEN EXCLUDED.status = 'paid' THEN EXCLUDED.amount ELSE billing_history.amount END, "
        "hosted_invoice_url = coalesce(EXCLUDED.hosted_invoice_url, billing_history.hosted_invoice_url), "
        "invoice_pdf = coalesce(EXCLUDED.invoice_pdf, billing_history.invoice_pdf), "
        "stripe_charge_id = coalesce(EXCLUDED.stripe_charge_id, billing_history.stripe_charge_id), "
        "stripe_payment_intent_id = coalesce(EXCLUDED.stripe_payment_intent_id, "
        "billing_history.stripe_payment_intent_id) WHERE billing_history.tenant_id = EXCLUDED.tenant_id",
        (tenant_id, invoice_id, amount, currency, status, hosted_invoice_url, invoice_pdf, charge_id,
         payment_intent_id))


def refund_invoice(conn: Connection, tenant_id: str, *, invoice_id: str | None, charge_id: str,
                   payment_intent_id: str | None, refunded_amount: int) -> str | None:
    """The tenant's invoice paid by the charge (by invoice, charge or payment intent) becomes ``refunded`` with
    the amount refunded so far (never less than recorded: refunds only add up); its invoice id, None if the
    tenant has no such invoice."""
    row = conn.execute(
        "UPDATE billing_history SET status = 'refunded', refunded_amount = greatest(refunded_amount, %s) "
        "WHERE tenant_id = %s AND (stripe_invoice_id = %s OR stripe_charge_id = %s "
        "OR stripe_payment_intent_id = %s) RETURNING stripe_invoice_id",
        (refunded_amount, tenant_id, invoice_id, charge_id, payment_intent_id)).fetchone()
    return None if row is None else row["stripe_invoice_id"]


def latest_invoices(conn: Connection, tenant_id: str, limit: int) -> list[Row]:
    """The latest ``limit`` invoices, newest first."""
    return conn.execute(f"SELECT {INVOICE_COLUMNS} FROM billing_history WHERE tenant_id = %s "
                        f"ORDER BY created_at DESC, id DESC LIMIT %s", (tenant_id, limit)).fetchall()


def invoices_page(conn: Connection, tenant_id: str, *, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table="billing_history", columns=INVOICE_COLUMNS, cursor=cursor, limit=limit,
                       filters={"tenant_id": tenant_id})
