"""Response models of the e-mail API (``funnel.email.routes``), exactly as the services return them.

Columns come from migrations/tenant/versions/email_*; a nullable column is ``X | None`` (always present,
possibly null). ``Out`` forbids undeclared fields, so a service that starts returning something new fails
the suite until it is declared here.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from funnel.api.contract import Out

# sent / partial / failed: nothing is left to send, and every message went out / some failed / none went out.
CampaignStatus = Literal["draft", "scheduled", "sending", "sent", "partial", "failed", "cancelled"]
MessageStatus = Literal["queued", "sent", "suppressed", "bounced", "complained", "failed", "cancelled"]
EventType = Literal["open", "click", "unsubscribe", "delivery", "bounce", "complaint"]


class EmailReminderRule(Out):
    when: Literal["not_opened", "opened_not_clicked"]
    after_days: float = Field(description="days after the previous mail")


class EmailReminderStrategy(Out):
    """The campaign's reminders, as given at creation."""

    rules: list[EmailReminderRule]
    max_reminders: int
    subject_prefix: str


class EmailAttachment(Out):
    """A file recipients download through a tracked, expiring link."""

    id: str = Field(description="the attachment's id (hex)")
    key: str = Field(description="where the file is stored")
    filename: str
    content_type: str


class EmailAttachmentUpload(EmailAttachment):
    upload_url: str = Field(description="S3 presigned PUT URL, valid 15 minutes; send the file with this Content-Type")


class EmailCampaign(Out):
    id: UUID
    user_id: UUID | None = Field(description="who created it (null once that user is deleted)")
    task_id: UUID | None = Field(description="the outreach send task whose contacts it was sent to")
    name: str
    subject: str
    body: str
    from_name: str
    from_address: str
    sender_identity: str
    reminder_strategy: EmailReminderStrategy | None
    attachment_urls: list[EmailAttachment]
    smtp_profile_id: UUID | None = Field(description="sent through this SMTP profile; null: through SES")
    status: CampaignStatus = Field(description="sent: every message to send went out; partial: some failed; failed: "
                                               "none went out (suppressed and cancelled messages count for neither)")
    error: str | None = Field(description="partial or failed: how many messages failed and the most frequent "
                                          "reasons (each failed message says its own)")
    send_at: datetime | None = Field(description="when a scheduled campaign goes out")
    created_at: datetime
    updated_at: datetime = Field(description="when it last changed (its status, its error, an attachment)")


class EmailCampaignSendResult(Out):
    campaign_id: UUID
    status: Literal["scheduled", "sending"]
    send_at: datetime | None = Field(description="when it goes out (status scheduled); null: now")
    queued: int | None = Field(description="messages handed to the sender now (0: every recipient is suppressed, the "
                                           "campaign is sent at once); null when scheduled")


class EmailCampaignCancelResult(Out):
    campaign_id: UUID
    status: Literal["cancelled"]
    cancelled_messages: int = Field(description="messages that were still waiting and will not be sent")


class EmailMessage(Out):
    """One recipient of a campaign."""

    id: UUID
    email: str
    name: str | None
    company: str | None
    status: MessageStatus
    reminder_sent: int = Field(description="reminders sent so far")
    sent_at: datetime | None
    error: str | None = Field(description="why it was not sent (failed, suppressed) or why a reminder was refused")


class EmailEventCount(Out):
    unique: int = Field(description="distinct recipients")
    total: int = Field(description="events")


class EmailLinkStats(Out):
    url: str = Field(description="the link clicked (`attachment:<filename>` for an attachment download)")
    unique: int
    total: int


class EmailRoundStats(Out):
    round: int = Field(description="0: the first mail; 1, 2...: reminders")
    sent: int
    opened: EmailEventCount
    clicked: EmailEventCount
    unsubscribed: int


class EmailCampaignStats(Out):
    """Human opens and clicks only; machine ones (scanners, privacy proxies) are counted apart."""

    messages: dict[MessageStatus, int] = Field(description="messages by status (statuses with none are left out)")
    sent: int
    reminders_sent: int
    delivered: int
    opened: EmailEventCount
    clicked: EmailEventCount
    bounced: int
    complained: int
    unsubscribed: int
    events: dict[EventType, EmailEventCount] = Field(description="events by type (types with none are left out)")
    machine_events_excluded: int
    links: list[EmailLinkStats] = Field(description="human clicks per link, most clicked first")
    rounds: list[EmailRoundStats]


class SmtpProfile(Out):
    """A tenant's own SMTP server; the password is write-only."""

    id: UUID
    name: str
    host: str
    port: int
    username: str | None
    starttls: bool
    from_address: str
    created_at: datetime


class SesNotificationOutcome(Out):
    """What became of an SNS message; exactly one member is present."""

    confirmed: bool | None = Field(default=None, description="a subscription confirmation was confirmed")
    recorded: Literal["Bounce", "Complaint", "Delivery"] | None = Field(default=None, description="the event recorded")
    duplicate: bool | None = Field(default=None, description="this notification was already recorded")
    ignored: str | None = Field(default=None, description="why the message was ignored")
