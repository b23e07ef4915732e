"""Document e-mail campaigns: create, send (one message per recipient, suppressed addresses
never), record tracking events, stats."""
from __future__ import annotations

import json
import smtplib
import uuid
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError
from psycopg.types.json import Jsonb

from funnel import db
from funnel.db import Connection
from funnel.email import mime, smtp, tokens
from funnel.email.events import is_machine, record_event  # noqa: F401 (the tracking events live there)
from funnel.observability import count, tracer
from funnel.platform import audit, aws, storage, suppression
from funnel.platform.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from funnel.platform.pagination import Page, decode_cursor, encode_cursor, keyset_page
from funnel.platform.principal import Principal
from funnel.platform.prompts import placeholders
from funnel.settings import get_settings

CAMPAIGN_COLUMNS = ("id, user_id, task_id, name, subject, body, from_name, from_address, sender_identity, "
                    "reminder_strategy, attachment_urls, smtp_profile_id, status, send_at, created_at")
VARIABLES = {"name", "company_name", "email"}
SEND_BATCH = 10


def _queue():
    return aws.client("sqs")


def _ses_client():
    return aws.client("sesv2")


class EmailThrottled(Exception):
    """The tenant's sending limit (or SES) says not now: the message waits ``retry_after`` seconds (None: the
    configured ``email_throttle_delay_seconds``) and is sent later."""

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


SES_THROTTLING = ("Throttling", "ThrottlingException", "TooManyRequestsException", "LimitExceededException")


def take_send_slot(conn: Connection) -> None:
    """Take one slot of the tenant's sending limits (per second and per rolling 24 hours), or raise
    EmailThrottled. Called in a short transaction before the one that sends: senders queue on the tenant's
    advisory lock only for this count-and-insert, never while SES or the SMTP server answers."""
    settings = get_settings()
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('email-rate:' || current_setting('app.tenant_id')))")
    sent = conn.execute("SELECT count(*) FILTER (WHERE taken_at > now() - interval '1 second') AS second, "
                        "count(*) AS day FROM email_send_slots WHERE taken_at > now() - interval '1 day'").fetchone()
    if sent["day"] >= settings.email_max_per_day:
        raise EmailThrottled(f"daily sending limit reached ({sent['day']} in 24 h)")
    if sent["second"] >= settings.email_max_per_second:  # the next second will do
        raise EmailThrottled(f"sending limit reached ({sent['second']}/s)", retry_after=1)
    conn.execute("INSERT INTO email_send_slots DEFAULT VALUES")
    if sent["day"] % 1000 == 0:  # now and then, forget slots that left the window
        conn.execute("DELETE FROM email_send_slots WHERE taken_at < now() - interval '1 day'")


def contact_recipients(conn: Connection, *, contact_ids: list[str] | None = None,
                       task_id: str | None = None) -> list[dict]:
    """Recipients from outreach contacts (by id) or from a send task's targets: every contact with an
    e-mail address; ``name`` is the contact person, ``company`` the company name."""
    rows: list[dict] = []
    columns = ("SELECT c.id::text AS contact_id, c.email::text AS email, c.default_contact_person AS name, "
               "c.company_name AS company FROM contacts c ")
    if contact_ids:
        found = conn.execute(columns + "WHERE c.id = ANY(%s::uuid[])", (contact_ids,)).fetchall()
        if len(found) != len(set(contact_ids)):
            raise ValidationFailed("some contact_ids are not contacts of this tenant")
        rows += [r for r in found if r["email"]]
    if task_id:
        if conn.execute("SELECT 1 FROM tasks WHERE id = %s", (task_id,)).fetchone() is None:
            raise ValidationFailed("unknown task_id")
        rows += conn.execute(columns + "JOIN task_targets t ON t.contact_id = c.id WHERE t.task_id = %s "
                             "AND c.email IS NOT NULL ORDER BY t.id", (task_id,)).fetchall()
    return rows


def create_campaign(principal: Principal, *, name: str, subject: str, body: str, from_name: str,
                    sender_identity: str, recipients: list[dict], reminder_strategy: dict | None,
                    smtp_profile_id: str | None = None, contact_ids: list[str] | None = None,
                    task_id: str | None = None) -> dict:
    unknown = (placeholders(subject) | placeholders(body)) - VARIABLES
    if unknown:
        raise ValidationFailed(f"unknown variables {sorted(unknown)}; available: {sorted(VARIABLES)}")
    if not recipients and not contact_ids and not task_id:
        raise ValidationFailed("a campaign needs recipients, contact_ids or a task_id")
    with db.tenant_transaction(principal.tenant_id) as conn:
        recipients = list(recipients) + contact_recipients(conn, contact_ids=contact_ids, task_id=task_id)
        if not recipients:
            raise ValidationFailed("none of the given contacts has an e-mail address")
        from_address = get_settings().ses_from_address
        if smtp_profile_id:
            profile = conn.execute("SELECT from_address FROM smtp_profiles WHERE id = %s",
                                   (smtp_profile_id,)).fetchone()
            if profile is None:
                raise ValidationFailed("unknown smtp_profile_id")
            from_address = profile["from_address"]
        campaign = conn.execute(
            f"INSERT INTO email_campaigns (user_id, task_id, name, subject, body, from_name, from_address, "
            f"sender_identity, reminder_strategy, smtp_profile_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING {CAMPAIGN_COLUMNS}",
            (principal.user_id, task_id, name, subject, body, from_name, from_address, sender_identity,
             Jsonb(reminder_strategy) if reminder_strategy else None, smtp_profile_id)).fetchone()
        unique = {}
        for recipient in recipients:
            address = suppression.normalized("email", recipient["email"])
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
             [suppression.normalized("domain", a.split("@", 1)[1]) for a in unique],
             [r.get("name") for r in unique.values()], [r.get("company") for r in unique.values()]))
        audit.record(conn, principal, "email_campaign.create", "email_campaign", campaign["id"],
                     {"recipients": len(unique)})
    return campaign


def get_campaign(conn: Connection, campaign_id: str, for_update: bool = False) -> dict:
    row = conn.execute(f"SELECT {CAMPAIGN_COLUMNS} FROM email_campaigns WHERE id = %s"
                       f"{' FOR UPDATE' if for_update else ''}", (campaign_id,)).fetchone()
    if row is None:
        raise NotFound("campaign not found")
    return row


def list_campaigns(conn: Connection, cursor: str | None, limit: int, status: str | None = None) -> Page:
    return keyset_page(conn, table="email_campaigns", columns=CAMPAIGN_COLUMNS, cursor=cursor, limit=limit,
                       filters={"status": status})


MESSAGE_COLUMNS = "id, email, name, company, status, reminder_sent, sent_at, error"


def list_messages(conn: Connection, campaign_id: str, cursor: str | None, limit: int,
                  status: str | None = None) -> Page:
    """A campaign's messages by address (the campaign's unique (campaign_id, email) index is the keyset)."""
    get_campaign(conn, campaign_id)
    clauses, params = ["campaign_id = %s"], [campaign_id]
    if status:
        clauses.append("status = %s")
        params.append(status)
    if cursor:
        clauses.append("email > %s")
        params.append(str(decode_cursor(cursor, 1)[0]))
    rows = conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM email_messages WHERE {' AND '.join(clauses)} "
                        f"ORDER BY email LIMIT %s", (*params, limit + 1)).fetchall()
    return Page.from_rows(rows, limit, lambda r: encode_cursor([r["email"]]))


def send(principal: Principal, campaign_id: str, send_at: datetime | None = None) -> dict:
    """Send now (queue one message per queued recipient) or at ``send_at`` (the 5-minute schedule sends it)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaign = get_campaign(conn, campaign_id, for_update=True)
        if campaign["status"] != "draft":
            raise Conflict(f"a {campaign['status']} campaign cannot be sent")
        later = send_at is not None and send_at > datetime.now(UTC)
        conn.execute("UPDATE email_campaigns SET status = %s, send_at = %s WHERE id = %s",
                     ("scheduled" if later else "sending", send_at, campaign_id))
        audit.record(conn, principal, "email_campaign.send", "email_campaign", campaign_id,
                     {"send_at": send_at.isoformat() if later else None})
        if later:
            return {"campaign_id": campaign_id, "status": "scheduled", "send_at": send_at.isoformat()}
        queued = _queue_campaign(conn, principal.tenant_id, campaign_id)
    return {"campaign_id": campaign_id, "status": "sending", "queued": queued}


FAN_OUT_CHUNK = 1000
IDS_PER_RECORD = 10  # messages per sender record: 10x fewer queue operations, each still sent once


def _queue_campaign(conn: Connection, tenant_id: str, campaign_id: str) -> int:
    """Hand a campaign that is becoming 'sending' (in ``conn``'s open transaction) to the email queue as one
    fan-out record (the sender expands it into one record per message, FAN_OUT_CHUNK at a time), so sending
    10,000 messages never holds up the API request. Returns how many messages are waiting to be sent.

    The record is queued before the transaction commits: if the queue is unreachable nothing changes (the
    campaign stays a draft, or scheduled) and the send can simply be tried again. The fan-out waits for this
    commit before it reads the campaign, and drops the record if the transaction rolled back."""
    waiting = conn.execute("SELECT count(*) AS n FROM email_messages WHERE campaign_id = %s AND status = 'queued'",
                           (campaign_id,)).fetchone()["n"]
    if not waiting:  # every recipient is suppressed: nothing to send
        conn.execute("UPDATE email_campaigns SET status = 'sent' WHERE id = %s", (campaign_id,))
        return 0
    try:
        _queue().send_message(QueueUrl=get_settings().email_queue_url, MessageBody=json.dumps(
            {"tenant_id": tenant_id, "campaign_id": campaign_id, "after": None}))
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailable("the sending queue cannot be reached; nothing was sent, try again") from exc
    return waiting


def _queue_records(bodies: list[dict]) -> None:
    """Queue records on the email queue, SEND_BATCH per call. Raises if any entry was refused, so the caller's
    record (or transaction) is retried rather than a message silently never queued."""
    queue_url = get_settings().email_queue_url
    for start in range(0, len(bodies), SEND_BATCH):
        answer = _queue().send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps(body)} for i, body in enumerate(bodies[start:start + SEND_BATCH])])
        if answer.get("Failed"):
            raise RuntimeError(f"the email queue refused {len(answer['Failed'])} records: {answer['Failed'][0]}")


def fan_out(tenant_id: str, campaign_id: str, after: str | None) -> int:
    """Queue one record per still-queued message of the campaign (ids after ``after``, one chunk), and a
    record for the next chunk. A retried chunk queues some messages twice; the sender sends each once."""
    with db.tenant_transaction(tenant_id) as conn:
        # FOR SHARE waits for the transaction that queued this record (see _queue_campaign) to end.
        campaign = conn.execute("SELECT status FROM email_campaigns WHERE id = %s FOR SHARE", (campaign_id,)).fetchone()
        if campaign is None or campaign["status"] != "sending":
            return 0
        ids = [str(r["id"]) for r in conn.execute(
            "SELECT id FROM email_messages WHERE campaign_id = %s AND status = 'queued' AND id > %s::uuid "
            "ORDER BY id LIMIT %s", (campaign_id, after or "00000000-0000-0000-0000-000000000000", FAN_OUT_CHUNK))]
    _queue_records([{"tenant_id": tenant_id, "message_ids": ids[i:i + IDS_PER_RECORD]}
                    for i in range(0, len(ids), IDS_PER_RECORD)])
    if len(ids) == FAN_OUT_CHUNK:
        _queue().send_message(QueueUrl=get_settings().email_queue_url, MessageBody=json.dumps(
            {"tenant_id": tenant_id, "campaign_id": campaign_id, "after": ids[-1]}))
    return len(ids)


def send_scheduled(tenant_id: str) -> int:
    """Queue the campaigns whose ``send_at`` has come (called by the 5-minute schedule). Each is moved to
    'sending' in its own transaction with its queue record, so a queue outage leaves it scheduled for the next run
    and two overlapping runs queue it once."""
    with db.tenant_transaction(tenant_id) as conn:
        due = [str(r["id"]) for r in conn.execute(
            "SELECT id FROM email_campaigns WHERE status = 'scheduled' AND send_at <= now() ORDER BY send_at")]
    queued = 0
    for campaign_id in due:
        with db.tenant_transaction(tenant_id) as conn:
            if conn.execute("UPDATE email_campaigns SET status = 'sending' WHERE id = %s AND status = 'scheduled' "
                            "RETURNING id", (campaign_id,)).fetchone():
                queued += _queue_campaign(conn, tenant_id, campaign_id)
    return queued


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


class SendRefused(Exception):
    """The provider refused this message for good, so retrying cannot help. ``bounce``: the recipient address
    itself was refused (a synchronous hard bounce, treated like one reported by SES)."""

    def __init__(self, reason: str, bounce: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.bounce = reason, bounce


# SES v2 errors about this message itself (sender not verified, invalid address, content refused). Account-wide
# states (suspended, sending paused) are not among them: they are retried and end in the DLQ, kept for later.
SES_REFUSALS = ("MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException")


def _transmit(conn: Connection, tenant_id: str, campaign: dict, message: dict, mail) -> str:
    """Send one rendered message through the campaign's channel (the tenant's SMTP profile, or SES v2 raw
    MIME with the configuration set and routing tags). SES throttling becomes EmailThrottled (retried later); a
    permanent refusal (SES, or an SMTP 5xx) becomes SendRefused; anything else is raised to be retried."""
    settings = get_settings()
    message_id = str(message["id"])
    request = {"FromEmailAddress": campaign["from_address"], "Destination": {"ToAddresses": [message["email"]]},
               "Content": {"Raw": {"Data": mail.as_bytes()}},
               # SES echoes these tags in bounce/complaint notifications: they route back without a lookup.
               "EmailTags": [{"Name": "tenant_id", "Value": tenant_id}, {"Name": "message_id", "Value": message_id}]}
    if settings.ses_configuration_set:
        request["ConfigurationSetName"] = settings.ses_configuration_set
    try:
        if campaign["smtp_profile_id"]:
            with tracer.subsegment("smtp.send"):
                return smtp.send(conn, tenant_id, str(campaign["smtp_profile_id"]), mail, message["email"])
        with tracer.subsegment("ses.send_email"):
            return _ses_client().send_email(**request)["MessageId"]
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        if code >= 500:
            raise SendRefused(f"SMTP {code} {_text(reply)}", bounce=True) from exc
        raise
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        if exc.smtp_code >= 500:
            raise SendRefused(f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        raise
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") in SES_THROTTLING:  # waits like our own limit
            raise EmailThrottled(f"SES throttled: {exc}") from exc
        if error.get("Code") in SES_REFUSALS:
            raise SendRefused(f"SES {error['Code']}: {error.get('Message', '')}") from exc
        raise


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _record_refusal(conn: Connection, message: dict, refusal: SendRefused, reminder_round: int) -> str:
    """A refused address is a hard bounce (event, suppression, status 'bounced'); a refused first message is
    'failed' with the reason; a refused reminder leaves the message as it was, with no further reminders."""
    if refusal.bounce:
        conn.execute("INSERT INTO email_events (email_message_id, type, detail, dedup_key) "
                     "VALUES (%s, 'bounce', %s, %s) ON CONFLICT (tenant_id, dedup_key) DO NOTHING",
                     (message["id"], Jsonb({"bounceType": "Permanent", "diagnostic": refusal.reason,
                                            "reported_by": "smtp"}), f"refused:{message['id']}:{reminder_round}"))
        suppression.suppress(conn, "email", message["email"], "hard_bounce", "smtp")
        count("EmailsBounced", tenant_id=str(message["tenant_id"]))
        status = "bounced"
    else:
        status = "sent" if reminder_round else "failed"
    conn.execute("UPDATE email_messages SET status = %s, error = %s, next_reminder_at = NULL WHERE id = %s",
                 (status, refusal.reason, message["id"]))
    return status


def _complete_when_nothing_queued(conn: Connection, campaign_id=None) -> int:
    """Mark sending campaigns (one, or all) 'sent' once none of their messages waits. Only a campaign with nothing
    queued is locked, so the senders of a running campaign never contend on its row; a row another transaction holds
    is skipped, never waited on (a cancel holds it while it locks the messages a sender holds). Two senders finishing
    the last two messages at once may each still see the other's as queued; the 5-minute schedule
    (complete_sent_campaigns) catches those."""
    return conn.execute(
        "UPDATE email_campaigns SET status = 'sent' WHERE id IN (SELECT c.id FROM email_campaigns c "
        "WHERE c.status = 'sending' AND (%s::uuid IS NULL OR c.id = %s::uuid) AND NOT EXISTS "
        "(SELECT 1 FROM email_messages m WHERE m.campaign_id = c.id AND m.status = 'queued') "
        "FOR NO KEY UPDATE OF c SKIP LOCKED)", (campaign_id, campaign_id)).rowcount


def complete_sent_campaigns(tenant_id: str) -> int:
    """The schedule's sweep: every sending campaign with no message left to send becomes 'sent'."""
    with db.tenant_transaction(tenant_id) as conn:
        return _complete_when_nothing_queued(conn)


def deliver(tenant_id: str, message_id: str, reminder_round: int = 0) -> str:
    """Send one message, or reminder round ``reminder_round`` of it. Idempotent: the row is locked and a
    message already sent (or a round already sent) is never sent again, however often the record is retried."""
    settings = get_settings()
    with db.tenant_transaction(tenant_id) as conn:
        message = conn.execute("SELECT * FROM email_messages WHERE id = %s", (message_id,)).fetchone()
        if message is None:
            return "unknown message"
        if reminder_round and message["reminder_sent"] >= reminder_round:
            return "reminder already sent"
        if message["status"] != ("sent" if reminder_round else "queued"):  # nothing to send: no slot taken
            return message["status"] if not reminder_round else "reminder not due"
        reason = suppression.is_suppressed(conn, email=message["email"])
        if reason and not reminder_round:
            conn.execute("UPDATE email_messages SET status = 'suppressed', error = %s WHERE id = %s AND "
                         "status = 'queued'", (reason, message_id))
            _complete_when_nothing_queued(conn, message["campaign_id"])
            return "suppressed"
        take_send_slot(conn)
    with db.tenant_transaction(tenant_id) as conn:
        message = conn.execute("SELECT * FROM email_messages WHERE id = %s FOR UPDATE SKIP LOCKED",
                               (message_id,)).fetchone()
        if message is None:
            raise RuntimeError(f"message {message_id} is being sent by another worker")
        campaign = get_campaign(conn, str(message["campaign_id"]))
        if reminder_round:
            return _deliver_reminder(conn, tenant_id, campaign, message, reminder_round)
        if message["status"] != "queued":
            return message["status"]
        reason = suppression.is_suppressed(conn, email=message["email"])
        if reason:
            conn.execute("UPDATE email_messages SET status = 'suppressed', error = %s WHERE id = %s",
                         (reason, message_id))
            _complete_when_nothing_queued(conn, campaign["id"])
            return "suppressed"
        mail = mime.build(campaign, message, tenant_id, tokens.tracking_key(), settings.public_base_url)
        try:
            provider_id = _transmit(conn, tenant_id, campaign, message, mail)
        except SendRefused as refusal:
            status = _record_refusal(conn, message, refusal, 0)
            _complete_when_nothing_queued(conn, campaign["id"])
            return status
        conn.execute("UPDATE email_messages SET status = 'sent', sent_at = now(), last_sent_at = now(), "
                     "provider_message_id = %s, tracking_token = %s, "
                     "next_reminder_at = now() + make_interval(secs => %s::float8 * 86400) WHERE id = %s",
                     (provider_id, mail["X-Funnel-Message"], _first_reminder_days(campaign["reminder_strategy"]),
                      message_id))
        count("EmailsSent", tenant_id=tenant_id)  # it went out: counted even if this commit fails
        _complete_when_nothing_queued(conn, campaign["id"])
    return "sent"


def _rules(strategy: dict | None) -> list[dict]:
    return [r for r in (strategy or {}).get("rules", []) if r.get("when") in ("not_opened", "opened_not_clicked")]


def _first_reminder_days(strategy: dict | None) -> float | None:
    rules = _rules(strategy)
    if not rules or int((strategy or {}).get("max_reminders", 1)) < 1:
        return None
    return min(float(r.get("after_days", 3)) for r in rules)


def recipient_state(conn: Connection, message_id) -> tuple[str, bool]:
    """("not_opened" | "opened_not_clicked" | "clicked", unsubscribed) from the human (non-machine) events."""
    events = {r["type"] for r in conn.execute(
        "SELECT DISTINCT type FROM email_events WHERE email_message_id = %s AND NOT is_machine", (message_id,))}
    state = "clicked" if "click" in events else "opened_not_clicked" if "open" in events else "not_opened"
    return state, "unsubscribe" in events or bool(events & {"bounce", "complaint"})


def reminder_rule(strategy: dict | None, state: str, reminders_sent: int) -> dict | None:
    """The rule that makes a reminder due for a recipient in ``state`` who has had ``reminders_sent``, or None."""
    if reminders_sent >= int((strategy or {}).get("max_reminders", 1)):
        return None
    return next((r for r in _rules(strategy) if r["when"] == state), None)


def _deliver_reminder(conn: Connection, tenant_id: str, campaign: dict, message: dict, reminder_round: int) -> str:
    if message["reminder_sent"] >= reminder_round:
        return "reminder already sent"
    if (message["status"] != "sent" or campaign["status"] == "cancelled"
            or message["reminder_sent"] != reminder_round - 1):
        conn.execute("UPDATE email_messages SET next_reminder_at = NULL WHERE id = %s", (message["id"],))
        return "reminder not due"
    strategy = campaign["reminder_strategy"] or {}
    state, left = recipient_state(conn, message["id"])
    rule = reminder_rule(strategy, state, message["reminder_sent"])
    if rule is None or left or suppression.is_suppressed(conn, email=message["email"]):
        conn.execute("UPDATE email_messages SET next_reminder_at = NULL WHERE id = %s", (message["id"],))
        return "reminder not due"
    reminder = {**campaign, "subject": f"{strategy.get('subject_prefix', '【再送】')}{campaign['subject']}"}
    mail = mime.build(reminder, message, tenant_id, tokens.tracking_key(), get_settings().public_base_url,
                      reminder_round)
    try:
        _transmit(conn, tenant_id, campaign, message, mail)
    except SendRefused as refusal:
        _record_refusal(conn, message, refusal, reminder_round)
        return "reminder refused"
    count("EmailRemindersSent", tenant_id=tenant_id)
    more = reminder_round < int(strategy.get("max_reminders", 1))
    next_days = min(float(r.get("after_days", 3)) for r in _rules(strategy)) if more else None
    conn.execute("UPDATE email_messages SET reminder_sent = %s, last_sent_at = now(), next_reminder_at = "
                 "now() + make_interval(secs => %s::float8 * 86400) WHERE id = %s",
                 (reminder_round, next_days, message["id"]))
    return "reminder sent"


REMINDER_LEASE = "1 hour"


def send_due_reminders(tenant_id: str, limit: int = 1000) -> int:
    """Queue the reminders that are due. Each message's strategy decides whether its recipient still
    qualifies (not opened / opened but not clicked); unsubscribed, bounced, complained or suppressed recipients
    never get one. A queued reminder is leased (next_reminder_at moves an hour on) so a lost queue message is
    picked up again, and the sender sends each round at most once (``deliver(..., reminder_round)``)."""
    due_rounds: list[tuple[str, int]] = []
    with db.tenant_transaction(tenant_id) as conn:
        due = conn.execute(
            "SELECT m.id, m.email, m.reminder_sent, c.reminder_strategy FROM email_messages m "
            "JOIN email_campaigns c ON c.id = m.campaign_id "
            "WHERE m.next_reminder_at <= now() AND m.status = 'sent' AND c.status <> 'cancelled' "
            "ORDER BY m.next_reminder_at LIMIT %s FOR UPDATE OF m SKIP LOCKED", (limit,)).fetchall()
        for message in due:
            state, left = recipient_state(conn, message["id"])
            rule = reminder_rule(message["reminder_strategy"], state, message["reminder_sent"])
            if rule is None or left or suppression.is_suppressed(conn, email=message["email"]):
                conn.execute("UPDATE email_messages SET next_reminder_at = NULL WHERE id = %s", (message["id"],))
                continue
            conn.execute(f"UPDATE email_messages SET next_reminder_at = now() + interval '{REMINDER_LEASE}' "
                         "WHERE id = %s", (message["id"],))
            due_rounds.append((str(message["id"]), message["reminder_sent"] + 1))
        # Queued before the commit: if the commit fails the sender still checks the round, so nothing doubles.
        _queue_records([{"tenant_id": tenant_id, "message_id": m, "reminder_round": n} for m, n in due_rounds])
    return len(due_rounds)


def _counts(rows: list[dict], event_type: str) -> dict:
    row = next((r for r in rows if r["type"] == event_type), None)
    return {"unique": row["unique_messages"], "total": row["total"]} if row else {"unique": 0, "total": 0}


def stats(conn: Connection, campaign_id: str) -> dict:
    """Sent, delivered, opened, clicked, bounced, complained, unsubscribed (unique recipients and total
    events), per link and per reminder round. Machine opens and clicks are counted apart
    (``machine_events_excluded``), never in the open/click figures."""
    get_campaign(conn, campaign_id)
    messages = {r["status"]: r["n"] for r in conn.execute(
        "SELECT status, count(*) AS n FROM email_messages WHERE campaign_id = %s GROUP BY status", (campaign_id,))}
    human = "(NOT e.is_machine OR e.type NOT IN ('open', 'click'))"
    events = conn.execute(
        "SELECT e.type, count(*) AS total, count(DISTINCT e.email_message_id) AS unique_messages "
        "FROM email_events e JOIN email_messages m ON m.id = e.email_message_id "
        f"WHERE m.campaign_id = %s AND {human} GROUP BY e.type", (campaign_id,)).fetchall()
    machine = conn.execute(
        "SELECT count(*) AS n FROM email_events e JOIN email_messages m ON m.id = e.email_message_id "
        "WHERE m.campaign_id = %s AND e.is_machine", (campaign_id,)).fetchone()["n"]
    links = conn.execute(
        "SELECT e.url, count(*) AS total, count(DISTINCT e.email_message_id) AS unique_messages FROM email_events e "
        "JOIN email_messages m ON m.id = e.email_message_id WHERE m.campaign_id = %s AND e.type = 'click' "
        "AND NOT e.is_machine GROUP BY e.url ORDER BY total DESC, e.url", (campaign_id,)).fetchall()
    round_events = conn.execute(
        "SELECT e.reminder_round, e.type, count(*) AS total, count(DISTINCT e.email_message_id) AS unique_messages "
        "FROM email_events e JOIN email_messages m ON m.id = e.email_message_id "
        f"WHERE m.campaign_id = %s AND {human} AND e.type IN ('open', 'click', 'unsubscribe') "
        "GROUP BY e.reminder_round, e.type", (campaign_id,)).fetchall()
    round_sent = {r["round"]: r["n"] for r in conn.execute(
        "SELECT g AS round, count(*) AS n FROM email_messages m, generate_series(0, m.reminder_sent) g "
        "WHERE m.campaign_id = %s AND m.sent_at IS NOT NULL GROUP BY g", (campaign_id,))}
    rounds = []
    for number in sorted(set(round_sent) | {r["reminder_round"] for r in round_events}):
        rows = [r for r in round_events if r["reminder_round"] == number]
        rounds.append({"round": number, "sent": round_sent.get(number, 0), "opened": _counts(rows, "open"),
                       "clicked": _counts(rows, "click"), "unsubscribed": _counts(rows, "unsubscribe")["unique"]})
    sent = sum(v for k, v in messages.items() if k not in ("queued", "suppressed", "cancelled", "failed"))
    return {"messages": messages, "sent": sent, "reminders_sent": sum(r["sent"] for r in rounds if r["round"]),
            "delivered": _counts(events, "delivery")["unique"], "opened": _counts(events, "open"),
            "clicked": _counts(events, "click"), "bounced": _counts(events, "bounce")["unique"],
            "complained": _counts(events, "complaint")["unique"],
            "unsubscribed": _counts(events, "unsubscribe")["unique"],
            "events": {e["type"]: {"total": e["total"], "unique": e["unique_messages"]} for e in events},
            "machine_events_excluded": machine,
            "links": [{"url": r["url"], "unique": r["unique_messages"], "total": r["total"]} for r in links],
            "rounds": rounds}
