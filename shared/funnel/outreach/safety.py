"""When outreach may contact someone: the sent history (re-contact interval), the send window and the
daily cap. Who must never be contacted is the suppression list, ``funnel.platform.suppression``
(shared with e-mail)."""
from __future__ import annotations

from datetime import datetime
from datetime import time as clock
from zoneinfo import ZoneInfo

from funnel.db import Connection

DEFAULT_RECONTACT_DAYS = 180


def recently_contacted(conn: Connection, domain: str, days: int) -> bool:
    return conn.execute("SELECT 1 FROM sent_history WHERE domain = %s AND sent_at > now() - make_interval(days => %s) "
                        "LIMIT 1", (domain, days)).fetchone() is not None


def record_sent(conn: Connection, domain: str, contact_id: str | None, task_id: str, channel: str = "form") -> None:
    conn.execute("INSERT INTO sent_history (domain, contact_id, task_id, channel) VALUES (%s, %s, %s, %s)",
                 (domain, contact_id, task_id, channel))


def outside_send_window(window: dict | None, now: datetime | None = None) -> str | None:
    """``{"days": [0..6 Mon-Sun], "start": "09:00", "end": "18:00", "timezone": "Asia/Tokyo"}``; None = always open."""
    if not window:
        return None
    zone = ZoneInfo(window.get("timezone", "Asia/Tokyo"))
    local = (now or datetime.now(zone)).astimezone(zone)
    days = window.get("days", [0, 1, 2, 3, 4])
    start = clock.fromisoformat(window.get("start", "09:00"))
    end = clock.fromisoformat(window.get("end", "18:00"))
    if local.weekday() not in days or not start <= local.time() < end:
        return f"outside the send window ({window.get('start', '09:00')}-{window.get('end', '18:00')} {zone.key})"
    return None


def submitted_today(conn: Connection, timezone: str = "Asia/Tokyo") -> int:
    return conn.execute("SELECT count(*) AS n FROM sent_history "
                        "WHERE sent_at >= date_trunc('day', now() AT TIME ZONE %s) AT TIME ZONE %s",
                        (timezone, timezone)).fetchone()["n"]

