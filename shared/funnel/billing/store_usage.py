"""Data access of the plan's usage counters (tenant DB ``billing_usage``, migration ``t0001_billing``).

Every function takes a ``funnel.db.tenant_transaction`` connection (RLS: the transaction's tenant only). The rules
(which plan, which limit, when the owners are told) are ``funnel.billing.usage``'s.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from funnel.db import Connection, Row, fetch_one

COLUMNS = "metric, period_start, used, notified_percent"


def ensure_counter(conn: Connection, metric: str, period_start: date) -> None:
    """The month's row of ``metric`` exists (a concurrent first use waits for the other's insert)."""
    conn.execute("INSERT INTO billing_usage (metric, period_start) VALUES (%s, %s) "
                 "ON CONFLICT (tenant_id, metric, period_start) DO NOTHING", (metric, period_start))


def add_within(conn: Connection, metric: str, period_start: date, amount: Decimal,
               limit: Decimal | None) -> Row | None:
    """Add ``amount`` if the total stays within ``limit`` (None: no limit); the row, locked, or None when it
    would not. The row lock makes a concurrent consumer re-check the condition against this one's total."""
    return conn.execute(
        f"UPDATE billing_usage SET used = used + %(amount)s, updated_at = now() "
        f"WHERE tenant_id = current_setting('app.tenant_id', true) AND metric = %(metric)s "
        f"AND period_start = %(period)s AND (%(limit)s::numeric IS NULL OR used + %(amount)s <= %(limit)s::numeric) "
        f"RETURNING {COLUMNS}",
        {"amount": amount, "metric": metric, "period": period_start, "limit": limit}).fetchone()


def lock_counter(conn: Connection, metric: str, period_start: date) -> Row:
    return fetch_one(conn.execute(
        f"SELECT {COLUMNS} FROM billing_usage WHERE tenant_id = current_setting('app.tenant_id', true) "
        f"AND metric = %s AND period_start = %s FOR UPDATE", (metric, period_start)))


def set_used(conn: Connection, metric: str, period_start: date, used: Decimal) -> Row:
    return fetch_one(conn.execute(
        f"UPDATE billing_usage SET used = %s, updated_at = now() WHERE tenant_id = current_setting('app.tenant_id', "
        f"true) AND metric = %s AND period_start = %s RETURNING {COLUMNS}", (used, metric, period_start)))


def give_back(conn: Connection, metric: str, period_start: date, amount: Decimal) -> None:
    """Return units taken for something that did not happen after all (never below zero)."""
    conn.execute("UPDATE billing_usage SET used = greatest(used - %s, 0), updated_at = now() "
                 "WHERE tenant_id = current_setting('app.tenant_id', true) AND metric = %s AND period_start = %s",
                 (amount, metric, period_start))


def raise_notified(conn: Connection, metric: str, period_start: date, percent: int) -> bool:
    """Record that the owners were told about ``percent``; False when they already were (this month)."""
    return conn.execute(
        "UPDATE billing_usage SET notified_percent = %s WHERE tenant_id = current_setting('app.tenant_id', true) "
        "AND metric = %s AND period_start = %s AND notified_percent < %s RETURNING metric",
        (percent, metric, period_start, percent)).fetchone() is not None


def month_counters(conn: Connection, period_start: date) -> list[Row]:
    return conn.execute(f"SELECT {COLUMNS} FROM billing_usage WHERE period_start = %s ORDER BY metric",
                        (period_start,)).fetchall()


def enabled_users(conn: Connection) -> int:
    """The seats taken: the workspace's users who are not disabled (invited ones hold a seat too)."""
    return int(fetch_one(conn.execute("SELECT count(*) AS n FROM users WHERE NOT disabled"))["n"])
