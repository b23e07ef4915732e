"""Delivering one notification (the notifications queue's consumer).

At-least-once input, at-most-once effect: the row is locked while it is sent,
and a row already DELIVERED is acknowledged without sending again, so an SQS
redelivery is recorded once. A failed attempt is counted on the row
(``retry_count``, ``last_retry_at``, ``error_message``) and raised, so the
message comes back after a backoff; when ``max_retry_count`` retries have
failed the row is FAILED and the message goes on failing until the queue's
redrive policy moves it to the DLQ, where an operator can redrive it (or an
admin resends the notification).

A redriven message is a new SQS message (receive count 1) for a FAILED row:
the original message never reaches the consumer again once its row is FAILED
on the last receive, so a first receive of a FAILED row means "try again" and
starts a fresh round of retries. A later receive of a FAILED row (the same
message coming back, or a duplicate) only fails again on its way to the DLQ.
"""
from __future__ import annotations

import html
import json
import time

from funnel import db
from funnel.notifications import signing, store
from funnel.notifications.channels import channel_for
from funnel.observability import count, tracer
from funnel.platform import aws, ssrf
from funnel.settings import get_settings

HTTP_TIMEOUT_SECONDS = 10.0


class DeliveryError(Exception):
    """This attempt failed; the message must come back (or go to the DLQ)."""


class NotDeliverable(DeliveryError):
    """The notification is FAILED for good (retries exhausted); the message belongs in the DLQ."""


class RowNotVisible(DeliveryError):
    """The row is not there (yet) or another worker holds it: try again later."""


def _ses_client():
    return aws.client("sesv2")


def backoff_seconds(retry_count: int) -> int:
    """Wait before the next attempt: base x 4^(retries-1), capped at 15 minutes."""
    base = get_settings().notification_retry_base_seconds
    return int(min(900, base * 4 ** max(0, retry_count - 1)))


def deliver(tenant_id: str, row_id: str, receive_count: int = 1) -> str:
    """Send one notification; returns its final status or raises DeliveryError.

    ``receive_count`` is the SQS message's ApproximateReceiveCount (1 for a new or redriven message)."""
    with db.tenant_transaction(tenant_id) as conn:
        row = store.lock_for_delivery(conn, row_id)
        if row is None:
            raise RowNotVisible(f"notification {row_id} is not visible yet or is being delivered")
        if row["delivery_status"] in ("DELIVERED", "CANCELLED") or row["is_deleted"]:
            return row["delivery_status"]
        if row["expired"]:  # news past its expiry date is not worth sending any more
            store.cancel(conn, row_id, "expired before it could be delivered")
            return "CANCELLED"
        if row["delivery_status"] == "FAILED":
            if receive_count > 1:
                raise NotDeliverable(f"notification {row_id} failed after {row['retry_count']} retries")
            # Redriven from the DLQ by an operator: a fresh round of retries.
            row = store.restart_retries(conn, row_id) | {"recipient_email": row["recipient_email"]}
        try:
            with tracer.subsegment(f"notifications.{str(row['delivery_method']).lower()}"):
                external_id = _send(conn, tenant_id, row)
        except Exception as exc:  # every failure of the channel counts as an attempt
            error = f"{type(exc).__name__}: {exc}"[:2000]
            if row["retry_count"] >= row["max_retry_count"]:
                store.mark_failed(conn, row_id, error)
                count("NotificationsFailed", tenant_id=tenant_id)
                raise_after_commit: DeliveryError = NotDeliverable(error)
            else:
                store.record_retry(conn, row_id, error)
                count("NotificationRetries", tenant_id=tenant_id)
                raise_after_commit = DeliveryError(error)
        else:
            store.mark_delivered(conn, row_id, external_id)
            count("NotificationsDelivered", tenant_id=tenant_id)
            return "DELIVERED"
    raise raise_after_commit  # raised outside the block so the counted attempt is committed


def _send(conn, tenant_id: str, row: dict) -> str | None:
    method = row["delivery_method"]
    if method == "EMAIL":
        return _send_email(row)
    channel = channel_for(conn, tenant_id, method, str(row["recipient_id"]))
    if channel is None:
        raise DeliveryError(f"no {method} channel is configured for this recipient or workspace")
    if method == "SLACK":
        _post(channel.url, json.dumps(slack_payload(row)).encode(), {})
        return None
    body = json.dumps({
        "id": str(row["id"]), "notification_id": row["notification_id"], "batch_id": str(row["batch_id"] or "") or None,
        "title": row["title"], "message": row["message"], "category": row["notification_category"],
        "type": row["notification_type"], "priority": row["priority_level"],
        "related_entity": {"type": row["related_entity_type"], "id": row["related_entity_id"]},
        "recipient_id": str(row["recipient_id"]), "created_at": row["created_at"].isoformat(),
    }, ensure_ascii=False).encode()
    timestamp = int(time.time())
    _post(channel.url, body, {"Funnel-Timestamp": str(timestamp),
                              "Funnel-Signature": signing.sign(channel.signing_secret or "", timestamp, body),
                              "Funnel-Notification-Id": row["notification_id"]})
    return None


def slack_escape(text: str) -> str:
    """Slack's control characters: a title can never become a mention (<!channel>) or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(row: dict) -> dict:
    text = f"*{slack_escape(row['title'])}*" + (f"\n{slack_escape(row['message'])}" if row["message"] else "")
    if row.get("action_url"):
        url = row["action_url"].replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
        text += f"\n<{url}|{slack_escape(row.get('action_label') or 'Open')}>"
    return {"text": text}


_http_client = None


def _http():
    """One HTTP client per process: building a TLS context costs ~0.1 s, and connections are kept alive.

    Each new connection passes the SSRF guard and goes to the address it approved (a channel's host may
    resolve elsewhere now than when it was saved); redirects are not followed."""
    global _http_client
    if _http_client is None:
        _http_client = ssrf.http_client(timeout=HTTP_TIMEOUT_SECONDS,
                                        headers={"User-Agent": "Funnel-Notifications/1.0"})
    return _http_client


def _post(url: str, body: bytes, headers: dict) -> None:
    ssrf.parse_url(url)  # the connection itself is checked (and pinned) by the client
    response = _http().post(url, content=body, headers={"content-type": "application/json", **headers})
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"{url.split('?')[0]} answered {response.status_code}")


def _send_email(row: dict) -> str:
    settings = get_settings()
    text = row["message"] or row["title"]
    if row["action_url"]:
        text += f"\n\n{row['action_label'] or 'Open'}: {row['action_url']}"
    content: dict = {"Subject": {"Data": row["title"], "Charset": "UTF-8"},
                     "Body": {"Text": {"Data": text, "Charset": "UTF-8"}}}
    if row["message_format"] == "HTML":
        html_body = row["message"] or ""
        if row["action_url"]:
            html_body += (f'<p><a href="{html.escape(row["action_url"], quote=True)}">'
                          f'{html.escape(row["action_label"] or "Open")}</a></p>')
        content["Body"]["Html"] = {"Data": html_body, "Charset": "UTF-8"}
    request = {"FromEmailAddress": settings.ses_from_address,
               "Destination": {"ToAddresses": [row["recipient_email"]]}, "Content": {"Simple": content}}
    if settings.ses_configuration_set:
        request["ConfigurationSetName"] = settings.ses_configuration_set
    return _ses_client().send_email(**request)["MessageId"]
