"""When outreach may contact someone: the do-not-contact list (``funnel.platform.suppression``, shared with
e-mail), the sent history (re-contact interval), the send window and the daily cap.

``skip_reason`` is asked once, when a task's target is created (a reason: the target is created
``skipped``); ``defer_reason`` again right before the worker opens the browser to submit (a reason: the
target waits for the task's next start). The SQL is ``store_tasks`` / ``store_contacts``.
"""
from __future__ import annotations

from datetime import datetime
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from funnel.db import Connection
from funnel.outreach import store_contacts, store_tasks
from funnel.platform import suppression

DEFAULT_RECONTACT_DAYS = 180
DEFAULT_TIMEZONE = "Asia/Tokyo"


def skip_reason(conn: Connection, target: dict[str, Any], recontact_days: int) -> str | None:
    """Why a new target must not be contacted: it is on the do-not-contact list (by e-mail, domain, phone,
    company name or corporate number), or its domain was contacted within ``recontact_days``."""
    reason = suppression.is_suppressed(conn, email=target.get("email"), domain=target["domain"],
                                       phone=target.get("phone"), company_name=target.get("company_name"),
                                       corporate_number=target.get("corporate_number"))
    if reason is None and store_tasks.contacted_within(conn, target["domain"], recontact_days):
        reason = f"{target['domain']} was contacted within {recontact_days} days"
    return reason


def defer_reason(conn: Connection, target: dict[str, Any], task_settings: dict[str, Any],
                 now: datetime | None = None) -> str | None:
    """Why a target must not be submitted now: on the do-not-contact list (checked again, with its contact's
    e-mail, phone and corporate number), outside the task's send window, or the daily cap is reached."""
    contact = store_contacts.suppression_keys(conn, target["contact_id"]) if target["contact_id"] else None
    reason = suppression.is_suppressed(conn, domain=target["domain"], company_name=target["company_name"],
                                       **(contact or {}))
    reason = reason or outside_send_window(task_settings.get("send_window"), now)
    cap = task_settings.get("daily_cap")
    if reason is None and cap is not None:
        if store_tasks.submitted_today(conn, send_timezone(task_settings)) >= int(cap):
            reason = daily_cap_reached(int(cap))
    return reason


def daily_cap_reached(cap: int) -> str:
    return f"the daily cap of {cap} submissions is reached"


def send_timezone(task_settings: dict[str, Any]) -> str:
    """The time zone of the task's send window: where its days (and the daily cap's) begin."""
    return str((task_settings.get("send_window") or {}).get("timezone", DEFAULT_TIMEZONE))


def outside_send_window(window: dict | None, now: datetime | None = None) -> str | None:
    """``{"days": [0..6 Mon-Sun], "start": "09:00", "end": "18:00", "timezone": "Asia/Tokyo"}``; None = always open."""
    if not window:
        return None
    zone = ZoneInfo(window.get("timezone", DEFAULT_TIMEZONE))
    local = (now or datetime.now(zone)).astimezone(zone)
    days = window.get("days", [0, 1, 2, 3, 4])
    start = clock.fromisoformat(window.get("start", "09:00"))
    end = clock.fromisoformat(window.get("end", "18:00"))
    if local.weekday() not in days or not start <= local.time() < end:
        return f"outside the send window ({window.get('start', '09:00')}-{window.get('end', '18:00')} {zone.key})"
    return None
