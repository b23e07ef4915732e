"""Data access of billing, in the control DB: the tenant's subscription columns (``tenants``), the Stripe
events processed (``stripe_events``) and the invoices (``billing_history``).

The rules (return URLs, status mapping, one processing per event id, the 402 gate) stay in ``subscriptions`` and
``limits``. Every function takes a ``funnel.db.control_transaction()`` connection.
"""
from __future__ import annotations

from datetime import datetime

from funnel.db import Connection, Row

INVOICES_LISTED = 50


# ---------------------------------------------------------------- tenants
def subscription_status(conn: Connection, tenant_id: str) -> str | None:
    """None when the tenant is unknown."""
    row = conn.execute("SELECT subscription_status FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    return None if row is None else row["subscription_status"]


def lock_customer_id(conn: Connection, tenant_id: str) -> Row | None:
    """``stripe_customer_id`` (null before the first checkout), the tenant's row locked; None when unknown."""
    return conn.execute("SELECT stripe_customer_id FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,)).fetchone()


def set_customer_id(conn: Connection, tenant_id: str, customer_id: str) -> None:
    conn.execute("UPDATE tenants SET stripe_customer_id = %s, updated_at = now() WHERE id = %s",
                 (customer_id, tenant_id))


def tenant_exists(conn: Connection, tenant_id: str) -> bool:
    return conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is not None


def tenant_of_customer(conn: Connection, customer_id: str) -> str | None:
    row = conn.execute("SELECT id FROM tenants WHERE stripe_customer_id = %s", (customer_id,)).fetchone()
    return None if row is None else str(row["id"])


def record_checkout(conn: Connection, tenant_id: str, customer_id: str | None, subscription_id: str | None) -> None:
    """A completed checkout: its subscription, and its customer unless the tenant has one."""
    conn.execute("UPDATE tenants SET stripe_customer_id = coalesce(stripe_customer_id, %s), "
                 "stripe_subscription_id = %s, updated_at = now() WHERE id = %s",
                 (customer_id, subscription_id, tenant_id))


def set_subscription(conn: Connection, tenant_id: str, *, subscription_id: str | None, status: str, plan: str,
                     current_period_end: datetime | None) -> None:
    conn.execute("UPDATE tenants SET stripe_subscription_id = %s, subscription_status = %s, plan = %s, "
                 "current_period_end = %s, updated_at = now() WHERE id = %s",
                 (subscription_id, status, plan, current_period_end, tenant_id))


def active_to_past_due(conn: Connection, tenant_id: str) -> None:
    """A failed payment: an active subscription becomes past due (other statuses stay)."""
    conn.execute("UPDATE tenants SET subscription_status = 'past_due', updated_at = now() WHERE id = %s "
                 "AND subscription_status = 'active'", (tenant_id,))


def billing_summary(conn: Connection, tenant_id: str) -> Row | None:
    """``plan, subscription_status, current_period_end, has_customer``; None when the tenant is unknown."""
    return conn.execute("SELECT plan, subscription_status, current_period_end, stripe_customer_id IS NOT NULL "
                        "AS has_customer FROM tenants WHERE id = %s", (tenant_id,)).fetchone()


# ---------------------------------------------------------------- Stripe events, invoices
def record_event(conn: Connection, event_id: str, event_type: str, tenant_id: str | None) -> bool:
    """Whether the event id is new (False: it was processed before, nothing is recorded)."""
    return conn.execute("INSERT INTO stripe_events (id, type, tenant_id) VALUES (%s, %s, %s) "
                        "ON CONFLICT (id) DO NOTHING RETURNING id", (event_id, event_type, tenant_id)
                        ).fetchone() is not None


def upsert_invoice(conn: Connection, tenant_id: str, *, invoice_id: str, amount: int, currency: str,
                   status: str) -> None:
    """Record the invoice once; a later event about it updates its status."""
    conn.execute("INSERT INTO billing_history (tenant_id, stripe_invoice_id, amount, currency, status) "
                 "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (stripe_invoice_id) DO UPDATE SET status = EXCLUDED.status",
                 (tenant_id, invoice_id, amount, currency, status))


def latest_invoices(conn: Connection, tenant_id: str) -> list[Row]:
    """The latest ``INVOICES_LISTED`` invoices, newest first."""
    return conn.execute(f"SELECT stripe_invoice_id, amount, currency, status, created_at FROM billing_history "
                        f"WHERE tenant_id = %s ORDER BY created_at DESC LIMIT {INVOICES_LISTED}",
                        (tenant_id,)).fetchall()
