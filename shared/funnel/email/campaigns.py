"""Document e-mail campaigns: create, send (one message per recipient, suppressed addresses
never), record tracking events, stats."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from psycopg import Connection
from psycopg.types.json import Jsonb

from funnel.platform import aws
from funnel import db
from funnel.email import mime, smtp, tokens
from funnel.outreach import safety
from funnel.platform import audit, storage
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.principal import Principal
from funnel.platform.prompts import placeholders
from funnel.settings import get_settings

CAMPAIGN_COLUMNS = ("id, user_id, task_id, name, subject, body, from_name, from_address, sender_identity, "
                    "reminder_strategy, attachment_urls, smtp_profile_id, status, send_at, created_at")
VARIABLES = {"name", "company_name", "email"}
SEND_BATCH = 10
# A click this soon after sending is a link scanner, not a person.
MACHINE_CLICK_SECONDS = 10
MACHINE_AGENTS = ("googleimageproxy", "yahoomailproxy", "barracuda", "proofpoint", "mimecast", "bot", "crawler",
                  "preview", "scanner", "python-requests", "curl")


def _queue():
    return aws.client("sqs")


def _ses_client():
    return aws.client("sesv2")


class EmailThrottled(Exception):
    """The tenant's sending limit (or SES) says not now: the message waits and is sent later."""


SES_THROTTLING = ("Throttling", "ThrottlingException", "TooManyRequestsException", "LimitExceededException")


def _check_rate(conn: Connection) -> None:
    settings = get_settings()
    sent = conn.execute("SELECT count(*) FILTER (WHERE sent_at > now() - interval '1 second') AS second, "
                        "count(*) AS day FROM email_messages WHERE sent_at > now() - interval '1 day'").fetchone()
    if sent["second"] >= settings.email_max_per_second or sent["day"] >= settings.email_max_per_day:
        raise EmailThrottled(f"sending limit reached ({sent['second']}/s, {sent['day']} in 24 h)")


def create_campaign(principal: Principal, *, name: str, subject: str, body: str, from_name: str,
                    sender_identity: str, recipients: list[dict], reminder_strategy: dict | None,
                    smtp_profile_id: str | None = None) -> dict:
    unknown = (placeholders(subject) | placeholders(body)) - VARIABLES
    if unknown:
        raise ValidationFailed(f"unknown variables {sorted(unknown)}; available: {sorted(VARIABLES)}")
    if not recipients:
        raise ValidationFailed("a campaign needs at least one recipient")
    with db.tenant_transaction(principal.tenant_id) as conn:
        from_address = get_settings().ses_from_address
        if smtp_profile_id:
            profile = conn.execute("SELECT from_address FROM smtp_profiles WHERE id = %s", (smtp_profile_id,)).fetchone()
            if profile is None:
                raise ValidationFailed("unknown smtp_profile_id")
            from_address = profile["from_address"]
        campaign = conn.execute(
            f"INSERT INTO email_campaigns (user_id, name, subject, body, from_name, from_address, sender_identity, "
            f"reminder_strategy, smtp_profile_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING {CAMPAIGN_COLUMNS}",
            (principal.user_id, name, subject, body, from_name, from_address, sender_identity,
             Jsonb(reminder_strategy) if reminder_strategy else None, smtp_profile_id)).fetchone()
        unique = {}
        for recipient in recipients:
            address = safety.normalized("email", recipient["email"])
            unique.setdefault(address, recipient)
        # One statement for any number of recipients; the do-not-contact list is checked in the same query.
        conn.execute(
            "INSERT INTO email_messages (campaign_id, contact_id, email, name, company, status, error) "
            "SELECT %s, r.contact_id, r.email, r.name, r.company, "
            "CASE WHEN s.reason IS NULL THEN 'queued' ELSE 'suppressed' END, "
            "CASE WHEN s.reason IS NOT NULL THEN s.kind || ' on the do-not-contact list (' || s.reason || ')' END "
            "FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "AS r(contact_id, email, domain, name, company) "
            "LEFT JOIN LATERAL (SELECT kind, reason FROM suppressions WHERE (kind = 'email' AND value = r.email) "
            "OR (kind = 'domain' AND value = r.domain) LIMIT 1) s ON true "
            "ON CONFLICT (campaign_id, email) DO NOTHING",
            (campaign["id"], [r.get("contact_id") for r in unique.values()], list(unique),
             [safety.normalized("domain", a.split("@", 1)[1]) for a in unique],
             [r.get("name") for r in unique.values()], [r.get("company") for r in unique.values()]))
        seen = unique
        audit.record(conn, principal, "email_campaign.create", "email_campaign", campaign["id"],
                     {"recipients": len(seen)})
    return campaign


def get_campaign(conn: Connection, campaign_id: str, for_update: bool = False) -> dict:
    row = conn.execute(f"SELECT {CAMPAIGN_COLUMNS} FROM email_campaigns WHERE id = %s"
                       f"{' FOR UPDATE' if for_update else ''}", (campaign_id,)).fetchone()
    if row is None:
        raise NotFound("campaign not found")
    return row


def send(principal: Principal, campaign_id: str, send_at: datetime | None = None) -> dict:
    """Send now (queue one message per queued recipient) or at ``send_at`` (the 5-minute schedule sends it)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaign = get_campaign(conn, campaign_id, for_update=True)
        if campaign["status"] != "draft":
            raise Conflict(f"a {campaign['status']} campaign cannot be sent")
        later = send_at is not None and send_at > datetime.now(timezone.utc)
        conn.execute("UPDATE email_campaigns SET status = %s, send_at = %s WHERE id = %s",
                     ("scheduled" if later else "sending", send_at, campaign_id))
        audit.record(conn, principal, "email_campaign.send", "email_campaign", campaign_id,
                     {"send_at": send_at.isoformat() if later else None})
    if later:
        return {"campaign_id": campaign_id, "status": "scheduled", "send_at": send_at.isoformat()}
    return {"campaign_id": campaign_id, "status": "sending", "queued": _queue_messages(principal.tenant_id, campaign_id)}


def _queue_messages(tenant_id: str, campaign_id: str) -> int:
    with db.tenant_transaction(tenant_id) as conn:
        ids = [str(r["id"]) for r in conn.execute(
            "SELECT id FROM email_messages WHERE campaign_id = %s AND status = 'queued'", (campaign_id,))]
    queue_url = get_settings().email_queue_url
    for start in range(0, len(ids), SEND_BATCH):
        _queue().send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"tenant_id": tenant_id, "message_id": m})}
            for i, m in enumerate(ids[start:start + SEND_BATCH])])
    return len(ids)


def send_scheduled(tenant_id: str) -> int:
    """Queue the campaigns whose ``send_at`` has come (called by the 5-minute schedule)."""
    with db.tenant_transaction(tenant_id) as conn:
        due = [str(r["id"]) for r in conn.execute(
            "UPDATE email_campaigns SET status = 'sending' WHERE status = 'scheduled' AND send_at <= now() "
            "RETURNING id")]
    return sum(_queue_messages(tenant_id, campaign_id) for campaign_id in due)


def add_attachment(principal: Principal, campaign_id: str, filename: str, content_type: str) -> dict:
    """Register an attachment and return a presigned URL to upload it to S3 (15 minutes). Recipients get a
    tracked download link instead of the file."""
    attachment_id = uuid.uuid4().hex
    key = f"attachments/{principal.tenant_id}/{campaign_id}/{attachment_id}/{filename}"
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaign = get_campaign(conn, campaign_id, for_update=True)
        if campaign["status"] != "draft":
            raise Conflict("attachments are added before sending")
        entry = {"id": attachment_id, "key": key, "filename": filename, "content_type": content_type}
        conn.execute("UPDATE email_campaigns SET attachment_urls = attachment_urls || %s WHERE id = %s",
                     (Jsonb([entry]), campaign_id))
        audit.record(conn, principal, "email_campaign.attach", "email_campaign", campaign_id, {"filename": filename})
    upload_url = storage.s3().generate_presigned_url(
        "put_object", Params={"Bucket": get_settings().artifacts_bucket, "Key": key, "ContentType": content_type},
        ExpiresIn=900)
    return {**entry, "upload_url": upload_url}


def attachment_download(tenant_id: str, message_id: str, attachment_id: str) -> tuple[str, str] | None:
    """(filename, presigned GET URL valid 5 minutes) of a campaign attachment, or None."""
    with db.tenant_transaction(tenant_id) as conn:
        row = conn.execute("SELECT c.attachment_urls FROM email_messages m JOIN email_campaigns c "
                           "ON c.id = m.campaign_id WHERE m.id = %s", (message_id,)).fetchone()
    for attachment in (row or {}).get("attachment_urls") or []:
        if attachment["id"] == attachment_id:
            return attachment["filename"], storage.presigned_url(attachment["key"], expires_in=300)
    return None


def cancel(principal: Principal, campaign_id: str) -> dict:
    """Stop a campaign: messages not yet sent are cancelled, no reminder goes out."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaign = get_campaign(conn, campaign_id, for_update=True)
        if campaign["status"] in ("sent", "cancelled"):
            raise Conflict(f"a {campaign['status']} campaign cannot be cancelled")
        conn.execute("UPDATE email_campaigns SET status = 'cancelled' WHERE id = %s", (campaign_id,))
        cancelled = conn.execute("UPDATE email_messages SET status = 'cancelled' WHERE campaign_id = %s "
                                 "AND status = 'queued'", (campaign_id,)).rowcount
        conn.execute("UPDATE email_messages SET next_reminder_at = NULL WHERE campaign_id = %s", (campaign_id,))
        audit.record(conn, principal, "email_campaign.cancel", "email_campaign", campaign_id, {"cancelled": cancelled})
    return {"campaign_id": campaign_id, "status": "cancelled", "cancelled_messages": cancelled}


def deliver(tenant_id: str, message_id: str) -> str:
    """Send one message (idempotent: a message already sent is not sent again)."""
    settings = get_settings()
    with db.tenant_transaction(tenant_id) as conn:
        message = conn.execute("SELECT * FROM email_messages WHERE id = %s FOR UPDATE SKIP LOCKED",
                               (message_id,)).fetchone()
        if message is None:
            raise RuntimeError(f"message {message_id} is not visible or being sent")
        if message["status"] != "queued":
            return message["status"]
        reason = safety.is_suppressed(conn, email=message["email"])
        if reason:
            conn.execute("UPDATE email_messages SET status = 'suppressed', error = %s WHERE id = %s",
                         (reason, message_id))
            return "suppressed"
        campaign = get_campaign(conn, str(message["campaign_id"]))
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('email-rate:' || current_setting('app.tenant_id')))")
        _check_rate(conn)
        mail = mime.build(campaign, message, tenant_id, tokens.tracking_key(), settings.public_base_url)
        request = {"FromEmailAddress": campaign["from_address"], "Destination": {"ToAddresses": [message["email"]]},
                   "Content": {"Raw": {"Data": mail.as_bytes()}},
                   # SES echoes these tags in bounce/complaint notifications: they route back without a lookup.
                   "EmailTags": [{"Name": "tenant_id", "Value": tenant_id}, {"Name": "message_id", "Value": message_id}]}
        if settings.ses_configuration_set:
            request["ConfigurationSetName"] = settings.ses_configuration_set
        try:
            if campaign["smtp_profile_id"]:
                provider_id = smtp.send(conn, tenant_id, str(campaign["smtp_profile_id"]), mail, message["email"])
            else:
                provider_id = _ses_client().send_email(**request)["MessageId"]
        except Exception as exc:  # SES throttling waits like our own limit; other errors fail the record
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in SES_THROTTLING:
                raise EmailThrottled(f"SES throttled: {exc}") from exc
            raise
        conn.execute("UPDATE email_messages SET status = 'sent', sent_at = now(), provider_message_id = %s, "
                     "tracking_token = %s, next_reminder_at = now() + make_interval(secs => %s::float8 * 86400) "
                     "WHERE id = %s", (provider_id, mail["X-Funnel-Message"],
                                       _first_reminder_days(campaign["reminder_strategy"]), message_id))
        remaining = conn.execute("SELECT count(*) AS n FROM email_messages WHERE campaign_id = %s AND status = 'queued'",
                                 (campaign["id"],)).fetchone()["n"]
        if remaining == 0:
            conn.execute("UPDATE email_campaigns SET status = 'sent' WHERE id = %s AND status = 'sending'",
                         (campaign["id"],))
    return "sent"


def _rules(strategy: dict | None) -> list[dict]:
    return [r for r in (strategy or {}).get("rules", []) if r.get("when") in ("not_opened", "opened_not_clicked")]


def _first_reminder_days(strategy: dict | None) -> float | None:
    rules = _rules(strategy)
    if not rules or int((strategy or {}).get("max_reminders", 1)) < 1:
        return None
    return min(float(r.get("after_days", 3)) for r in rules)


def send_due_reminders(tenant_id: str, limit: int = 500) -> int:
    """Send the reminders that are due: each message's strategy decides whether its recipient still
    qualifies (not opened / opened but not clicked); suppressed recipients never get one."""
    settings = get_settings()
    sent = 0
    with db.tenant_transaction(tenant_id) as conn:
        due = conn.execute(
            "SELECT m.*, c.id AS c_id FROM email_messages m JOIN email_campaigns c ON c.id = m.campaign_id "
            "WHERE m.next_reminder_at <= now() AND m.status = 'sent' AND c.status <> 'cancelled' "
            "ORDER BY m.next_reminder_at LIMIT %s FOR UPDATE OF m SKIP LOCKED", (limit,)).fetchall()
        for message in due:
            campaign = get_campaign(conn, str(message["campaign_id"]))
            strategy = campaign["reminder_strategy"] or {}
            events = {r["type"] for r in conn.execute(
                "SELECT DISTINCT type FROM email_events WHERE email_message_id = %s AND NOT is_machine",
                (message["id"],))}
            state = "clicked" if "click" in events else "opened_not_clicked" if "open" in events else "not_opened"
            rule = next((r for r in _rules(strategy) if r["when"] == state), None)
            if (rule is None or message["reminder_sent"] >= int(strategy.get("max_reminders", 1))
                    or "unsubscribe" in events or safety.is_suppressed(conn, email=message["email"])):
                conn.execute("UPDATE email_messages SET next_reminder_at = NULL WHERE id = %s", (message["id"],))
                continue
            reminder = {**campaign, "subject": f"{strategy.get('subject_prefix', '【再送】')}{campaign['subject']}"}
            mail = mime.build(reminder, message, tenant_id, tokens.tracking_key(), settings.public_base_url)
            request = {"FromEmailAddress": campaign["from_address"],
                       "Destination": {"ToAddresses": [message["email"]]}, "Content": {"Raw": {"Data": mail.as_bytes()}}}
            if settings.ses_configuration_set:
                request["ConfigurationSetName"] = settings.ses_configuration_set
            _ses_client().send_email(**request)
            more = message["reminder_sent"] + 1 < int(strategy.get("max_reminders", 1))
            conn.execute("UPDATE email_messages SET reminder_sent = reminder_sent + 1, next_reminder_at = "
                         "now() + make_interval(secs => %s::float8 * 86400) WHERE id = %s",
                         (float(rule.get("after_days", 3)) if more else None, message["id"]))
            sent += 1
    return sent


def is_machine(event_type: str, user_agent: str | None, method: str, seconds_since_sent: float | None) -> bool:
    agent = (user_agent or "").lower()
    if method == "HEAD" or any(marker in agent for marker in MACHINE_AGENTS):
        return True
    return event_type == "click" and seconds_since_sent is not None and seconds_since_sent < MACHINE_CLICK_SECONDS


def record_event(tenant_id: str, message_id: str, event_type: str, *, url: str | None, user_agent: str | None,
                 ip: str | None, method: str, dedup_key: str | None) -> None:
    with db.tenant_transaction(tenant_id) as conn:
        message = conn.execute("SELECT id, email, extract(epoch FROM now() - sent_at) AS age FROM email_messages "
                               "WHERE id = %s", (message_id,)).fetchone()
        if message is None:
            return
        conn.execute(
            "INSERT INTO email_events (email_message_id, type, url, user_agent, ip, is_machine, dedup_key) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, dedup_key) DO NOTHING",
            (message_id, event_type, url, (user_agent or "")[:500], ip,
             is_machine(event_type, user_agent, method, float(message["age"]) if message["age"] is not None else None),
             dedup_key))
        if event_type == "unsubscribe":
            safety.suppress(conn, "email", message["email"], "unsubscribed", f"email_message:{message_id}")
            conn.execute("UPDATE email_messages SET next_reminder_at = NULL WHERE id = %s", (message_id,))


def stats(conn: Connection, campaign_id: str) -> dict:
    get_campaign(conn, campaign_id)
    messages = {r["status"]: r["n"] for r in conn.execute(
        "SELECT status, count(*) AS n FROM email_messages WHERE campaign_id = %s GROUP BY status", (campaign_id,))}
    events = conn.execute(
        "SELECT e.type, count(*) AS total, count(DISTINCT e.email_message_id) AS unique_messages, "
        "count(*) FILTER (WHERE e.is_machine) AS machine FROM email_events e JOIN email_messages m "
        "ON m.id = e.email_message_id WHERE m.campaign_id = %s AND (NOT e.is_machine OR e.type NOT IN ('open', 'click')) "
        "GROUP BY e.type", (campaign_id,)).fetchall()
    machine = conn.execute(
        "SELECT count(*) AS n FROM email_events e JOIN email_messages m ON m.id = e.email_message_id "
        "WHERE m.campaign_id = %s AND e.is_machine", (campaign_id,)).fetchone()["n"]
    links = conn.execute(
        "SELECT e.url, count(*) AS total, count(DISTINCT e.email_message_id) AS unique_messages FROM email_events e "
        "JOIN email_messages m ON m.id = e.email_message_id WHERE m.campaign_id = %s AND e.type = 'click' "
        "AND NOT e.is_machine GROUP BY e.url ORDER BY total DESC", (campaign_id,)).fetchall()
    by_type = {e["type"]: {"total": e["total"], "unique": e["unique_messages"]} for e in events}
    return {"messages": messages, "sent": sum(v for k, v in messages.items() if k not in ("queued", "suppressed")),
            "events": by_type, "machine_events_excluded": machine, "links": links}
