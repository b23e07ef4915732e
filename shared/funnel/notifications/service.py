"""Notifications (seed 004): every area tells users things through ``notify``.

One row per recipient and channel. IN_APP rows are delivered the moment they
are written (the inbox reads them); EMAIL, SLACK and WEBHOOK rows start
PENDING and a message per row goes to the notifications queue, whose consumer
(``delivery.deliver``) sends, retries and records the outcome. When ``notify``
runs inside the caller's transaction (``conn``), nothing can be queued before
that transaction commits, so the rows stay PENDING and the sweep
(``dispatch_pending``, run by the cleanup schedule and callable right after the
commit) queues them: a notification is never lost between the two.
"""
from __future__ import annotations

import json
import re
import uuid
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from funnel import db
from funnel.db import Connection
from funnel.notifications import store, templates
from funnel.notifications.store import COLUMNS, INBOX  # noqa: F401 (re-exported: the benchmark reads them here)
from funnel.observability import logger
from funnel.platform import audit, aws
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.settings import get_settings

CHANNELS = ("IN_APP", "EMAIL", "SLACK", "WEBHOOK")
PRIORITIES = ("LOW", "NORMAL", "HIGH", "URGENT")
SEND_BATCH = 10  # SQS SendMessageBatch limit
# The notifications queue's maxReceiveCount is 4: the first attempt and at most 3 retries per round.
MAX_RETRY_COUNT = 3
# A PENDING delivery queued this long ago and never attempted lost its message: the sweep queues it again.
REQUEUE_AFTER_SECONDS = 900
# Categories whose notifications carry a secret for their recipient alone (a live single-use link: a password
# reset, an e-mail verification): the API never shows their message, link or variables to anyone else.
SECRET_CATEGORIES = frozenset({"account"})


def _queue():
    return aws.client("sqs")


def notify(tenant_id: str, *, recipient_user_ids: list[str], category: str, title: str | None = None,
           body: str | None = None, priority: str = "NORMAL", channels: tuple[str, ...] = ("IN_APP",),
           related_entity_type: str | None = None, related_entity_id: str | None = None,
           template_id: str | None = None, template_variables: dict | None = None,
           sender_user_id: str | None = None, expiry_date: date | datetime | None = None,
           notification_type: str = "INFO",
           action_url: str | None = None, action_label: str | None = None, message_format: str = "PLAIN",
           personalization: dict | None = None, max_retry_count: int = 3,
           conn: Connection | None = None) -> list[dict]:
    """Write one notification per recipient and channel, and queue the ones that leave Funnel."""
    recipients = list(dict.fromkeys(str(r) for r in recipient_user_ids))
    if not recipients:
        raise ValidationFailed("a notification needs at least one recipient")
    unknown = set(channels) - set(CHANNELS)
    if unknown or not channels:
        raise ValidationFailed(f"channels must be among {CHANNELS}")
    if priority not in PRIORITIES:
        raise ValidationFailed(f"priority must be one of {PRIORITIES}")
    if not 0 <= max_retry_count <= MAX_RETRY_COUNT:
        raise ValidationFailed(f"max_retry_count must be between 0 and {MAX_RETRY_COUNT}")
    if isinstance(expiry_date, datetime):  # the seed's expiry_date is a DATE: visible through that day
        expiry_date = expiry_date.date()
    language = (personalization or {}).get("language")
    if template_id:
        title, body = templates.render(template_id, template_variables or {}, language, message_format)
    if not title:
        raise ValidationFailed("a notification needs a title or a template")
    channels = tuple(dict.fromkeys(channels))
    rows = [(recipient, channel) for recipient in recipients for channel in channels]
    batch_id = str(uuid.uuid4()) if len(rows) > 1 else None
    params = {
        "recipients": [r for r, _ in rows], "methods": [c for _, c in rows],
        "business_ids": [f"ntf_{uuid.uuid4().hex}" for _ in rows], "batch_id": batch_id, "title": title[:200],
        "message": body, "category": category, "type": notification_type, "priority": priority,
        "entity_type": related_entity_type, "entity_id": str(related_entity_id) if related_entity_id else None,
        "template_id": template_id, "variables": Jsonb(template_variables) if template_variables else None,
        "sender": sender_user_id, "expiry": expiry_date, "bulk": len(recipients) > 1, "format": message_format,
        "personalization": Jsonb(personalization) if personalization else None, "max_retry": max_retry_count,
        "action_url": action_url, "action_label": action_label, "created_by": sender_user_id or "system",
        # Outside a caller's transaction the rows are queued right after this commit; inside one, the sweep does it.
        "queue_now": conn is None,
    }
    try:
        if conn is not None:
            with conn.transaction():
                created = store.insert_notifications(conn, params)
            return created
        with db.tenant_transaction(tenant_id) as own:
            created = store.insert_notifications(own, params)
    except psycopg.errors.ForeignKeyViolation as exc:
        raise ValidationFailed.at(["body", "recipient_ids"], "not users of this workspace") from exc
    except psycopg.errors.CheckViolation as exc:
        raise ValidationFailed(f"invalid notification: {exc.diag.constraint_name}") from exc
    except psycopg.errors.DataError as exc:  # a value too long for its column, an id that is not a UUID
        raise ValidationFailed(f"invalid notification: {exc.diag.message_primary}") from exc
    outgoing = [row for row in created if row["delivery_method"] != "IN_APP"]
    if outgoing:
        _enqueue_or_release(tenant_id, outgoing)
    return created


def _enqueue_or_release(tenant_id: str, rows: list[dict]) -> bool:
    """Queue the rows; when the queue refuses, mark them unqueued so the next sweep (at most 5 minutes
    later) tries again. The rows are committed either way, so the caller's notify has succeeded: raising
    would only tempt it to notify twice."""
    try:
        enqueue(tenant_id, rows)
        return True
    except Exception:
        logger.exception("notification deliveries could not be queued; the sweep will queue them",
                         extra={"count": len(rows)})
    try:
        with db.tenant_transaction(tenant_id) as conn:
            store.release_unqueued(conn, [row["id"] for row in rows])
    except Exception:  # then they count as lost messages: re-queued after REQUEUE_AFTER_SECONDS
        logger.exception("could not release the unqueued notification deliveries")
    return False


def enqueue(tenant_id: str, rows: list[dict]) -> None:
    """Queue deliveries: URGENT ones first and one by one, the rest in SendMessageBatch chunks."""
    queue_url = get_settings().notifications_queue_url
    if not queue_url:
        raise RuntimeError("FUNNEL_NOTIFICATIONS_QUEUE_URL is not set")
    urgent = [r for r in rows if r["priority_level"] == "URGENT"]
    others = [r for r in rows if r["priority_level"] != "URGENT"]
    for row in urgent:
        _queue().send_message(QueueUrl=queue_url, MessageBody=_message(tenant_id, row))
    for start in range(0, len(others), SEND_BATCH):
        chunk = others[start:start + SEND_BATCH]
        result = _queue().send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(index), "MessageBody": _message(tenant_id, row)} for index, row in enumerate(chunk)])
        if result.get("Failed"):
            raise RuntimeError(f"{len(result['Failed'])} notification deliveries could not be queued; "
                               f"the sweep will queue them again")


def _message(tenant_id: str, row: dict) -> str:
    return json.dumps({"tenant_id": tenant_id, "id": str(row["id"])})


def dispatch_pending(tenant_id: str, older_than_seconds: int = 0, limit: int = 1000) -> int:
    """Queue the deliveries nobody queued: rows written inside a caller's transaction (``queued_at``
    unset, at least ``older_than_seconds`` old), rows whose queueing failed, and PENDING rows queued
    more than REQUEUE_AFTER_SECONDS ago that were never attempted (a lost message). Rows are claimed
    (``queued_at = now()``, SKIP LOCKED), so concurrent sweeps do not queue the same row twice; a
    duplicate would still be harmless, the consumer being idempotent on the notification."""
    with db.tenant_transaction(tenant_id) as conn:
        rows = store.claim_unqueued(conn, older_than_seconds, REQUEUE_AFTER_SECONDS, limit)
    if rows:
        _enqueue_or_release(tenant_id, rows)
    return len(rows)


def archive_expired(tenant_id: str) -> int:
    with db.tenant_transaction(tenant_id) as conn:
        return store.archive_expired(conn)


# ---------------------------------------------------------------- the signed-in user's inbox

def inbox(conn: Connection, principal: Principal, *, read_status: str | None, category: str | None,
          priority: str | None, cursor: str | None, limit: int) -> Page:
    if read_status not in (None, "READ", "UNREAD"):
        raise ValidationFailed("read_status is READ or UNREAD")
    return store.inbox_page(conn, principal.user_id, read_status=read_status, category=category, priority=priority,
                            cursor=cursor, limit=limit)


UNREAD_COUNT_CAP = 1000  # a badge shows "999+"; counting 100,000 unread rows on every poll is waste


def unread_count(conn: Connection, principal: Principal) -> int:
    """Unread in-app notifications, counted up to UNREAD_COUNT_CAP."""
    return store.count_unread(conn, principal.user_id, UNREAD_COUNT_CAP)


def _own(conn: Connection, principal: Principal, notification_id: str) -> dict:
    row = store.lock_own(conn, notification_id, principal.user_id)
    if row is None:  # another user's notification is as absent as a missing one
        raise NotFound("notification not found")
    return row


@contextmanager
def _checked():
    """A change the table's CHECK constraints refuse is a Conflict."""
    try:
        yield
    except psycopg.errors.CheckViolation as exc:
        raise Conflict(f"that change breaks a notification rule ({exc.diag.constraint_name})") from exc


MOBILE_AGENT = re.compile(r"Mobile|Android|iPhone|iPad", re.IGNORECASE)


def reader(principal: Principal, user_agent: str | None) -> tuple:
    """Where it was read (the seed's ip_address, user_agent, device_type), for ``store.READER``."""
    if principal.api_key_id:
        device = "API"
    elif user_agent and MOBILE_AGENT.search(user_agent):
        device = "MOBILE"
    elif user_agent and user_agent.startswith("Mozilla/"):
        device = "WEB"
    else:
        device = "OTHER"
    return (principal.ip[:45] if principal.ip else None), (user_agent[:500] if user_agent else None), device


def mark_read(conn: Connection, principal: Principal, notification_id: str, read: bool,
              user_agent: str | None = None) -> dict:
    row = _own(conn, principal, notification_id)
    if read and row["read_status"] == "READ":
        return row
    if read:
        with _checked():
            return store.mark_read_now(conn, notification_id, principal.user_id, reader(principal, user_agent))
    if row["archived_at"] is not None:
        raise Conflict("an archived notification cannot be marked unread")
    with _checked():
        return store.mark_unread(conn, notification_id, principal.user_id)


def mark_all_read(conn: Connection, principal: Principal, user_agent: str | None = None) -> int:
    return store.mark_all_read(conn, principal.user_id, principal.user_id, reader(principal, user_agent))


def archive(conn: Connection, principal: Principal, notification_id: str) -> dict:
    _own(conn, principal, notification_id)
    with _checked():
        return store.archive(conn, notification_id, principal.user_id)


def delete(conn: Connection, principal: Principal, notification_id: str) -> None:
    """Logical delete: the row stays for history and stats, the user no longer sees it."""
    _own(conn, principal, notification_id)
    with _checked():
        store.soft_delete(conn, notification_id, principal.user_id)
    audit.record(conn, principal, "notification.delete", "notification", notification_id)


def set_read_at(conn: Connection, principal: Principal, notification_id: str, read_at: Any,
                user_agent: str | None = None) -> dict:
    """Record when a client says it was read (offline clients sync later); must not precede sending.
    A time in the future (a client's clock ahead) counts as now."""
    _own(conn, principal, notification_id)
    with _checked():
        return store.set_read_at(conn, notification_id, principal.user_id, read_at, reader(principal, user_agent))


# ---------------------------------------------------------------- admins

def redacted(row: dict) -> dict:
    """``row`` as a user other than its recipient may see it: a notification of a SECRET_CATEGORIES category
    keeps its title and delivery status, not its message, link or template variables."""
    if row["notification_category"] not in SECRET_CATEGORIES:
        return row
    return {**row, "message": None, "action_url": None, "template_variables": None}


def list_for_admin(conn: Connection, *, recipient_id: str | None, delivery_status: str | None,
                   delivery_method: str | None, cursor: str | None, limit: int) -> Page:
    page = store.admin_page(conn, recipient_id=recipient_id, delivery_status=delivery_status,
                            delivery_method=delivery_method, cursor=cursor, limit=limit)
    return Page([redacted(row) for row in page.items], page.next_cursor)


def resend(tenant_id: str, principal: Principal, notification_id: str) -> dict:
    with db.tenant_transaction(tenant_id) as conn:
        row = store.lock(conn, notification_id)
        if row is None:
            raise NotFound("notification not found")
        if row["delivery_status"] != "FAILED":
            raise Conflict(f"only failed deliveries are resent; this one is {row['delivery_status']}")
        row = store.reset_for_resend(conn, notification_id, principal.user_id)
        audit.record(conn, principal, "notification.resend", "notification", notification_id)
    _enqueue_or_release(tenant_id, [row])
    return redacted(row)


def delivery_stats(conn: Connection) -> list[dict]:
    return store.delivery_stats(conn)
