"""Getting one rendered mail out: the tenant's sending limits (a slot per send), the channel (SES v2, or the
campaign's SMTP profile), and what the provider's answers mean: throttling waits (EmailThrottled), a permanent
refusal is final (SendRefused; a refused address is a hard bounce), anything else is retried."""
from __future__ import annotations

import smtplib
from email.errors import MessageError
from email.message import Message
from typing import Any

from botocore.exceptions import ClientError

from funnel.db import Connection, Row
from funnel.email import smtp, store_events, store_messages
from funnel.observability import count, tracer
from funnel.platform import aws, suppression
from funnel.settings import get_settings

SES_THROTTLING = ("Throttling", "ThrottlingException", "TooManyRequestsException", "LimitExceededException")
# SES v2 errors about this message itself (sender not verified, invalid address, content refused). Account-wide
# states (suspended, sending paused) are not among them: they are retried and end in the DLQ, kept for later.
SES_REFUSALS = ("MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException")
FORGET_SLOTS_EVERY = 1000  # slots taken: now and then the ones that left the 24-hour window are deleted


class EmailThrottled(Exception):
    """The tenant's sending limit (or SES) says not now: the message waits ``retry_after`` seconds (None: the
    configured ``email_throttle_delay_seconds``) and is sent later."""

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class SendRefused(Exception):
    """The provider refused this message for good, so retrying cannot help. ``bounce``: the recipient address
    itself was refused (a synchronous hard bounce, treated like one reported by SES)."""

    def __init__(self, reason: str, bounce: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.bounce = reason, bounce


def _ses_client():
    return aws.client("sesv2")


def take_send_slot(conn: Connection) -> EmailThrottled | None:
    """Take one slot of the tenant's sending limits (per second and per rolling 24 hours), or return why not
    (EmailThrottled: the caller raises it once its transaction has committed what else it wrote). Called in a short
    transaction before the one that sends: senders queue on the tenant's advisory lock only for this
    count-and-insert, never while SES or the SMTP server answers."""
    settings = get_settings()
    store_messages.lock_tenant_send_rate(conn)
    second, day = store_messages.slots_taken(conn)
    if day >= settings.email_max_per_day:
        return EmailThrottled(f"daily sending limit reached ({day} in 24 h)")
    if second >= settings.email_max_per_second:  # the next second will do
        return EmailThrottled(f"sending limit reached ({second}/s)", retry_after=1)
    store_messages.take_slot(conn)
    if day % FORGET_SLOTS_EVERY == 0:
        store_messages.forget_old_slots(conn)
    return None


def transmit(conn: Connection, tenant_id: str, campaign: Row, message: Row, mail: Message) -> str:
    """Send one rendered message through the campaign's channel (the tenant's SMTP profile, or SES v2 raw
    MIME with the configuration set and routing tags); returns the provider's message id. SES throttling becomes
    EmailThrottled (retried later); a permanent refusal (SES, an SMTP 5xx, or a message that cannot be written as
    MIME) becomes SendRefused; anything else is raised to be retried."""
    settings = get_settings()
    try:
        raw = mail.as_bytes()
    except MessageError as exc:
        # The message cannot be written (a header that would start another header: input refuses control
        # characters, rows stored before it did may hold them). The same message fails the same way every time.
        raise SendRefused(f"the message cannot be written as MIME: {exc}") from exc
    request: dict[str, Any] = {
        "FromEmailAddress": campaign["from_address"], "Destination": {"ToAddresses": [message["email"]]},
        "Content": {"Raw": {"Data": raw}},
        # SES echoes these tags in bounce/complaint notifications: they route back without a lookup.
        "EmailTags": [{"Name": "tenant_id", "Value": tenant_id}, {"Name": "message_id", "Value": str(message["id"])}]}
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


def record_refusal(conn: Connection, message: Row, refusal: SendRefused, reminder_round: int) -> str:
    """A refused address is a hard bounce (event, suppression, status 'bounced'); a refused first message is
    'failed' with the reason; a refused reminder leaves the message 'sent', with no further reminders. Returns the
    message's status."""
    if refusal.bounce:
        store_events.insert_provider_event(
            conn, message["id"], "bounce",
            {"bounceType": "Permanent", "diagnostic": refusal.reason, "reported_by": "smtp"},
            f"refused:{message['id']}:{reminder_round}")
        suppression.suppress(conn, "email", message["email"], "hard_bounce", "smtp")
        count("EmailsBounced", tenant_id=str(message["tenant_id"]))
        status = "bounced"
    else:
        status = "sent" if reminder_round else "failed"
    store_messages.set_final_status(conn, message["id"], status, refusal.reason)
    return status
