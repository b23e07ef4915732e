"""The notifications area's data access: every SQL statement over ``notifications`` and
``notification_channels``, as small named functions.

The rules (who may do what, expiry, retries, channel validation, error translation) stay in
``service``, ``channels`` and ``delivery``, which call these. Rows are psycopg dict rows, returned as
they come: the routes' response models validate exactly these shapes.
"""
from __future__ import annotations

from typing import Any

from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

# A row here is a notification (``COLUMNS``), a channel (``CHANNEL_COLUMNS``) or a stats row.

COLUMNS = ("id, batch_id, notification_id, title, message, action_label, action_url, archived_at, delivered_at, "
           "delivery_method, delivery_status, error_message, expiry_date, external_message_id, is_bulk_notification, "
           "last_retry_at, max_retry_count, message_format, notification_category, notification_type, "
           "personalization_data, priority_level, read_at, read_status, recipient_id, related_entity_id, "
           "ip_address, user_agent, device_type, "
           "related_entity_type, retry_count, sender_id, sent_at, template_id, template_variables, created_at, "
           "updated_at")
# What a user's inbox shows: their own in-app notifications that are neither deleted, archived nor expired.
INBOX = ("delivery_method = 'IN_APP' AND NOT is_deleted AND archived_at IS NULL "
         "AND (expiry_date IS NULL OR expiry_date >= current_date)")
# Where it was read: (ip_address, user_agent, device_type), see ``service.reader``.
READER = "ip_address = %s, user_agent = %s, device_type = %s"
CHANNEL_COLUMNS = "id, kind, user_id, is_active, created_at, updated_at"

_INSERT = f"""
        INSERT INTO notifications (recipient_id, delivery_method, notification_id, batch_id, title, message,
            notification_category, notification_type, priority_level, related_entity_type, related_entity_id,
            template_id, template_variables, sender_id, expiry_date, is_bulk_notification, message_format,
            personalization_data, max_retry_count, action_url, action_label, created_by,
            delivery_status, sent_at, delivered_at, queued_at)
        SELECT r.recipient, r.method, r.business_id, %(batch_id)s, %(title)s, %(message)s, %(category)s, %(type)s,
            %(priority)s, %(entity_type)s, %(entity_id)s, %(template_id)s, %(variables)s, %(sender)s, %(expiry)s,
            %(bulk)s, %(format)s, %(personalization)s, %(max_retry)s, %(action_url)s, %(action_label)s,
            %(created_by)s,
            CASE WHEN r.method = 'IN_APP' THEN 'DELIVERED' ELSE 'PENDING' END,
            CASE WHEN r.method = 'IN_APP' THEN now() END, CASE WHEN r.method = 'IN_APP' THEN now() END,
            CASE WHEN r.method <> 'IN_APP' AND %(queue_now)s THEN now() END
        FROM unnest(%(recipients)s::uuid[], %(methods)s::text[], %(business_ids)s::text[])
            AS r(recipient, method, business_id)
        RETURNING {COLUMNS}"""


# ---------------------------------------------------------------- writing and queueing

def insert_notifications(conn: Connection, params: dict[str, Any]) -> list[Row]:
    """One row per (recipient, method) of ``params`` (see ``service.notify``); IN_APP rows are DELIVERED."""
    return conn.execute(_INSERT, params).fetchall()


def release_unqueued(conn: Connection, ids: list[Any]) -> None:
    """Forget that these PENDING rows were queued, so the next sweep queues them."""
    conn.execute("UPDATE notifications SET queued_at = NULL WHERE id = ANY(%s) AND delivery_status = 'PENDING'",
                 (ids,))


def claim_unqueued(conn: Connection, older_than_seconds: int, requeue_after_seconds: int, limit: int) -> list[Row]:
    """Claim (``queued_at = now()``, SKIP LOCKED) the PENDING outgoing rows nobody queued or whose message
    was lost; returns their ``id, priority_level``."""
    return conn.execute(
        "UPDATE notifications SET queued_at = now() WHERE id IN ("
        " SELECT id FROM notifications WHERE delivery_status = 'PENDING' AND delivery_method <> 'IN_APP'"
        " AND NOT is_deleted AND ((queued_at IS NULL AND created_at <= now() - make_interval(secs => %s))"
        "  OR queued_at < now() - make_interval(secs => %s))"
        " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED) "
        "RETURNING id, priority_level", (older_than_seconds, requeue_after_seconds, limit)).fetchall()


def archive_expired(conn: Connection) -> int:
    """Archive every notification past its expiry date; returns how many."""
    return conn.execute("UPDATE notifications SET archived_at = greatest(now(), read_at), updated_at = now(), "
                        "updated_by = 'system' WHERE expiry_date < current_date AND archived_at IS NULL "
                        "AND NOT is_deleted").rowcount


# ---------------------------------------------------------------- a user's inbox

def inbox_page(conn: Connection, recipient_id: str, *, read_status: str | None, category: str | None,
               priority: str | None, cursor: str | None, limit: int) -> Page:
    """``read_status`` must already be None, READ or UNREAD (it goes into the SQL as a literal)."""
    conditions: list[tuple[str, list]] = [(INBOX, [])]
    if read_status:  # a literal, not a parameter: prepared (generic) plans can then use the partial unread index
        conditions.append((f"read_status = '{read_status}'", []))
    return keyset_page(conn, table="notifications", columns=COLUMNS, cursor=cursor, limit=limit,
                       filters={"recipient_id": recipient_id, "notification_category": category,
                                "priority_level": priority}, conditions=conditions)


def count_unread(conn: Connection, recipient_id: str, cap: int) -> int:
    """Unread inbox notifications of ``recipient_id``, counted up to ``cap``."""
    return fetch_one(conn.execute(f"SELECT count(*) AS n FROM (SELECT 1 FROM notifications WHERE recipient_id = %s "
                                  f"AND read_status = 'UNREAD' AND {INBOX} LIMIT %s) AS unread",
                                  (recipient_id, cap)))["n"]


def lock_own(conn: Connection, notification_id: str, recipient_id: str) -> Row | None:
    """The recipient's own, not deleted notification, locked FOR UPDATE (None when there is none)."""
    return conn.execute(f"SELECT {COLUMNS} FROM notifications WHERE id = %s AND recipient_id = %s AND NOT is_deleted "
                        f"FOR UPDATE", (notification_id, recipient_id)).fetchone()


def _update(conn: Connection, notification_id: str, updated_by: str, assignments: str, params: tuple = ()) -> Row:
    """In a savepoint, so a CheckViolation (which the caller translates) leaves the transaction usable."""
    with conn.transaction():
        return fetch_one(conn.execute(f"UPDATE notifications SET {assignments}, updated_at = now(), "
                                      f"updated_by = %s WHERE id = %s RETURNING {COLUMNS}",
                                      (*params, updated_by, notification_id)))


def mark_read_now(conn: Connection, notification_id: str, updated_by: str, reader: tuple) -> Row:
    return _update(conn, notification_id, updated_by,
                   f"read_status = 'READ', read_at = greatest(now(), sent_at), {READER}", reader)


def mark_unread(conn: Connection, notification_id: str, updated_by: str) -> Row:
    return _update(conn, notification_id, updated_by, "read_status = 'UNREAD', read_at = NULL")


def set_read_at(conn: Connection, notification_id: str, updated_by: str, read_at: Any, reader: tuple) -> Row:
    """READ at ``read_at``, or now when that is in the future."""
    return _update(conn, notification_id, updated_by, f"read_status = 'READ', read_at = least(%s, now()), {READER}",
                   (read_at, *reader))


def archive(conn: Connection, notification_id: str, updated_by: str) -> Row:
    return _update(conn, notification_id, updated_by,
                   "archived_at = coalesce(archived_at, greatest(now(), read_at))")


def soft_delete(conn: Connection, notification_id: str, updated_by: str) -> Row:
    return _update(conn, notification_id, updated_by, "is_deleted = true")


def mark_all_read(conn: Connection, recipient_id: str, updated_by: str, reader: tuple) -> int:
    """Every unread inbox notification of ``recipient_id`` READ now; returns how many."""
    return conn.execute(f"UPDATE notifications SET read_status = 'READ', read_at = greatest(now(), sent_at), "
                        f"{READER}, updated_at = now(), updated_by = %s WHERE recipient_id = %s "
                        f"AND read_status = 'UNREAD' AND {INBOX}",
                        (*reader, updated_by, recipient_id)).rowcount


# ---------------------------------------------------------------- admins

def admin_page(conn: Connection, *, recipient_id: str | None, delivery_status: str | None,
               delivery_method: str | None, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table="notifications", columns=COLUMNS, cursor=cursor, limit=limit,
                       filters={"recipient_id": recipient_id, "delivery_status": delivery_status,
                                "delivery_method": delivery_method})


def lock(conn: Connection, notification_id: str) -> Row | None:
    """Any notification of the tenant, locked FOR UPDATE (None when there is none)."""
    return conn.execute(f"SELECT {COLUMNS} FROM notifications WHERE id = %s FOR UPDATE",
                        (notification_id,)).fetchone()


def reset_for_resend(conn: Connection, notification_id: str, updated_by: str) -> Row:
    """PENDING again with a fresh round of retries, marked queued (the caller queues it)."""
    return fetch_one(conn.execute(f"UPDATE notifications SET delivery_status = 'PENDING', retry_count = 0, "
                                  f"error_message = NULL, queued_at = now(), updated_at = now(), updated_by = %s "
                                  f"WHERE id = %s RETURNING {COLUMNS}",
                                  (updated_by, notification_id)))


def delivery_stats(conn: Connection) -> list[Row]:
    """Per delivery method: total, delivered, failed, pending, retries, avg_delivery_seconds."""
    return conn.execute(
        "SELECT delivery_method, count(*) AS total, "
        "count(*) FILTER (WHERE delivery_status = 'DELIVERED') AS delivered, "
        "count(*) FILTER (WHERE delivery_status = 'FAILED') AS failed, "
        "count(*) FILTER (WHERE delivery_status IN ('PENDING', 'RETRYING')) AS pending, "
        "coalesce(sum(retry_count), 0) AS retries, "
        "round(avg(extract(epoch FROM delivered_at - created_at)) FILTER (WHERE delivered_at IS NOT NULL)::numeric, 3) "
        "AS avg_delivery_seconds FROM notifications GROUP BY delivery_method ORDER BY delivery_method").fetchall()


# ---------------------------------------------------------------- delivery (the queue's consumer)

def lock_for_delivery(conn: Connection, notification_id: str) -> Row | None:
    """The whole row plus ``recipient_email`` and ``expired``, locked SKIP LOCKED (None: absent or held)."""
    return conn.execute(
        "SELECT n.*, u.email AS recipient_email, coalesce(n.expiry_date < current_date, false) AS expired "
        "FROM notifications n JOIN users u ON u.id = n.recipient_id "
        "WHERE n.id = %s FOR UPDATE OF n SKIP LOCKED", (notification_id,)).fetchone()


def cancel(conn: Connection, notification_id: str, reason: str) -> None:
    conn.execute("UPDATE notifications SET delivery_status = 'CANCELLED', error_message = %s, "
                 "updated_at = now() WHERE id = %s", (reason, notification_id))


def restart_retries(conn: Connection, notification_id: str) -> Row:
    """RETRYING with ``retry_count`` 0 (a redrive); returns the whole row."""
    return fetch_one(conn.execute("UPDATE notifications SET delivery_status = 'RETRYING', retry_count = 0, "
                                  "updated_at = now(), updated_by = 'redrive' WHERE id = %s RETURNING *",
                                  (notification_id,)))


def mark_failed(conn: Connection, notification_id: str, error: str) -> None:
    conn.execute("UPDATE notifications SET delivery_status = 'FAILED', error_message = %s, "
                 "updated_at = now() WHERE id = %s", (error, notification_id))


def record_retry(conn: Connection, notification_id: str, error: str) -> None:
    """One more failed attempt: RETRYING, ``retry_count`` + 1, ``last_retry_at`` now."""
    conn.execute("UPDATE notifications SET delivery_status = 'RETRYING', retry_count = retry_count + 1, "
                 "last_retry_at = now(), error_message = %s, updated_at = now() WHERE id = %s",
                 (error, notification_id))


def mark_delivered(conn: Connection, notification_id: str, external_id: str | None) -> None:
    conn.execute("UPDATE notifications SET delivery_status = 'DELIVERED', delivered_at = now(), "
                 "sent_at = coalesce(sent_at, now()), external_message_id = %s, error_message = NULL, "
                 "updated_at = now() WHERE id = %s", (external_id, notification_id))


# ---------------------------------------------------------------- channels

def upsert_channel(conn: Connection, kind: str, user_id: str | None, url_encrypted: Any,
                   signing_secret_encrypted: Any) -> Row:
    """Create or replace the (kind, user) channel, active; one statement, so concurrent saves cannot collide."""
    return fetch_one(conn.execute(
        f"INSERT INTO notification_channels (kind, user_id, url_encrypted, signing_secret_encrypted) "
        f"VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, kind, "
        f"coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid)) DO UPDATE SET "
        f"url_encrypted = excluded.url_encrypted, "
        f"signing_secret_encrypted = excluded.signing_secret_encrypted, "
        f"is_active = true, updated_at = now() RETURNING {CHANNEL_COLUMNS}",
        (kind, user_id, url_encrypted, signing_secret_encrypted)))


def list_channels(conn: Connection, user_id: str | None) -> list[Row]:
    """Every channel (``user_id`` None), or only ``user_id``'s own."""
    return conn.execute(f"SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE %(user)s::uuid IS NULL "
                        f"OR user_id = %(user)s::uuid ORDER BY kind, user_id NULLS FIRST", {"user": user_id}).fetchall()


def delete_channel(conn: Connection, channel_id: str, user_id: str | None) -> bool:
    """Delete it (only ``user_id``'s own when given); False when there was none."""
    return conn.execute("DELETE FROM notification_channels WHERE id = %(id)s AND (%(user)s::uuid IS NULL "
                        "OR user_id = %(user)s::uuid)", {"id": channel_id, "user": user_id}).rowcount != 0


def active_channel(conn: Connection, kind: str, user_id: str) -> Row | None:
    """The encrypted ``url_encrypted, signing_secret_encrypted`` of the user's active channel, else the tenant's."""
    return conn.execute("SELECT url_encrypted, signing_secret_encrypted FROM notification_channels "
                        "WHERE kind = %s AND is_active AND (user_id = %s OR user_id IS NULL) "
                        "ORDER BY user_id NULLS LAST LIMIT 1", (kind, user_id)).fetchone()
