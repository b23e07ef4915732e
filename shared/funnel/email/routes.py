"""Document e-mail API: campaigns, sending, messages, stats."""
from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import AfterValidator, AwareDatetime, Field

from funnel import db
from funnel.api.contract import Page, problem_response, problems
from funnel.api.deps import Admin, CurrentPrincipal, Cursor, Email, Limit, StrictModel, Writer, page_body
from funnel.billing.limits import PLAN_LIMIT_402
from funnel.email import campaigns, sending, smtp, sns, stats
from funnel.email.models import (
    CampaignStatus,
    EmailAttachmentUpload,
    EmailCampaign,
    EmailCampaignCancelResult,
    EmailCampaignSendResult,
    EmailCampaignStats,
    EmailMessage,
    MessageStatus,
    SesNotificationOutcome,
    SmtpProfile,
)
from funnel.platform.errors import SENDING_FORBIDDEN

router = APIRouter(prefix="/v1")

# Text that becomes (part of) a mail header: a CR or LF there would start a new header, and the sender refuses
# such a message only when it is written, long after the campaign was accepted. Every control character is refused
# at input instead, so the 422 names the field and nothing is stored.
HEADER_SAFE = r"^[^\x00-\x1f\x7f]*$"
# A MIME type as RFC 6838 spells it (type/subtype), with optional `; name=value` parameters.
_MIME_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
MIME_TYPE = rf"^{_MIME_NAME}/{_MIME_NAME}(; ?[A-Za-z0-9_.+-]+=[A-Za-z0-9_.+-]+)*$"


def _not_a_path_step(filename: str) -> str:
    """An attachment's file name is the last part of its S3 key and of the download's name: `.` and `..` would
    name a folder, not a file."""
    if set(filename) <= {"."}:
        raise ValueError("a file name cannot be only dots")
    return filename


AttachmentFilename = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^/\\\x00-\x1f\x7f]+$",
                                          description="a file name: no path separators, no control characters"),
                               AfterValidator(_not_a_path_step)]


class Recipient(StrictModel):
    email: Email
    name: str | None = Field(default=None, max_length=200, pattern=HEADER_SAFE,
                             description="goes into the To header: no control characters")
    company: str | None = Field(default=None, max_length=300, pattern=HEADER_SAFE)
    contact_id: UUID | None = None


class ReminderRule(StrictModel):
    when: Literal["not_opened", "opened_not_clicked"]
    after_days: float = Field(gt=0, le=365, description="days after the previous mail")


class ReminderStrategy(StrictModel):
    rules: list[ReminderRule] = Field(min_length=1, max_length=4)
    max_reminders: int = Field(default=1, ge=0, le=10)
    subject_prefix: str = Field(default="【再送】", max_length=50, pattern=HEADER_SAFE)


class CampaignBody(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=300, pattern=HEADER_SAFE,
                         description="the Subject header: no control characters")
    body: str = Field(min_length=1, max_length=50_000)
    from_name: str = Field(min_length=1, max_length=200, pattern=HEADER_SAFE,
                           description="goes into the From header: no control characters")
    sender_identity: str = Field(min_length=5, max_length=500,
                                 description="who sends: company, address, contact (特定電子メール法)")
    recipients: list[Recipient] = Field(default_factory=list, max_length=100_000)
    contact_ids: list[UUID] = Field(default_factory=list, max_length=100_000,
                                    description="outreach contacts to send to (those with an e-mail address)")
    task_id: UUID | None = Field(default=None, description="send to the contacts of an outreach send task")
    reminder_strategy: ReminderStrategy | None = None
    smtp_profile_id: UUID | None = Field(default=None, description="send through the tenant's SMTP server")


@router.get("/email-campaigns", tags=["email"])
def list_campaigns(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                   status: CampaignStatus | None = None) -> Page[EmailCampaign]:
    """The tenant's campaigns, newest first."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Page[EmailCampaign].model_validate(page_body(campaigns.list_campaigns(conn, cursor, limit, status)))


@router.post("/email-campaigns", status_code=201, tags=["email"])
def create_campaign(body: CampaignBody, principal: Writer) -> EmailCampaign:
    recipients = [{**r.model_dump(), "contact_id": str(r.contact_id) if r.contact_id else None}
                  for r in body.recipients]
    return EmailCampaign.model_validate(campaigns.create_campaign(
        principal, name=body.name, subject=body.subject, body=body.body, from_name=body.from_name,
        sender_identity=body.sender_identity, recipients=recipients,
        reminder_strategy=body.reminder_strategy.model_dump() if body.reminder_strategy else None,
        smtp_profile_id=str(body.smtp_profile_id) if body.smtp_profile_id else None,
        contact_ids=[str(c) for c in body.contact_ids], task_id=str(body.task_id) if body.task_id else None))


@router.get("/email-campaigns/{campaign_id}", tags=["email"], responses=problems(404))
def get_campaign(campaign_id: UUID, principal: CurrentPrincipal) -> EmailCampaign:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return EmailCampaign.model_validate(campaigns.get_campaign(conn, str(campaign_id)))


class SendBody(StrictModel):
    send_at: AwareDatetime | None = Field(default=None, description="send later (default: now); with its UTC offset")


SEND_PROBLEMS = problems(402, 403, 404, 409, 503, conflict="the campaign is not a draft", forbidden=SENDING_FORBIDDEN,
                         payment_required=PLAN_LIMIT_402 + " (`emails`: the month's are used up; each message "
                                                           "takes its own as it is sent)",
                         unavailable="The sending queue cannot be reached; nothing changed: send again after "
                                     "`Retry-After` seconds")
SEND_PROBLEMS[503]["headers"] = {"Retry-After": {"description": "seconds to wait before sending again",
                                                 "schema": {"type": "integer"}}}


@router.post("/email-campaigns/{campaign_id}/send", tags=["email"], responses=SEND_PROBLEMS)
def send_campaign(campaign_id: UUID, principal: Writer, body: SendBody | None = None) -> EmailCampaignSendResult:
    """Send now, or at `send_at`; a 503 (the sending queue is unreachable) changed nothing: send again after
    `Retry-After` seconds."""
    return EmailCampaignSendResult.model_validate(
        {"send_at": None, "queued": None, **sending.send(principal, str(campaign_id), body.send_at if body else None)})


class AttachmentBody(StrictModel):
    filename: AttachmentFilename
    content_type: str = Field(default="application/pdf", max_length=100, pattern=MIME_TYPE,
                              description="a MIME type (`type/subtype`, optional `; name=value` parameters)")


@router.post("/email-campaigns/{campaign_id}/attachments", status_code=201, tags=["email"],
             responses=problems(404, 409, conflict="the campaign is no longer a draft"))
def add_attachment(campaign_id: UUID, body: AttachmentBody, principal: Writer) -> EmailAttachmentUpload:
    """Returns `upload_url` (S3 presigned PUT, 15 minutes); recipients get a tracked, expiring download link."""
    return EmailAttachmentUpload.model_validate(
        campaigns.add_attachment(principal, str(campaign_id), body.filename, body.content_type))


@router.post("/email-campaigns/{campaign_id}/cancel", tags=["email"],
             responses=problems(404, 409, conflict="the campaign has ended (sent, partial, failed or cancelled)"))
def cancel_campaign(campaign_id: UUID, principal: Writer) -> EmailCampaignCancelResult:
    return EmailCampaignCancelResult.model_validate(campaigns.cancel(principal, str(campaign_id)))


@router.get("/email-campaigns/{campaign_id}/messages", tags=["email"], responses=problems(404))
def list_messages(campaign_id: UUID, principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                  status: MessageStatus | None = None) -> Page[EmailMessage]:
    """The campaign's messages by address, a page at a time; ``status=failed`` lists the ones to look at."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Page[EmailMessage].model_validate(
            page_body(campaigns.list_messages(conn, str(campaign_id), cursor, limit, status)))


@router.get("/email-campaigns/{campaign_id}/stats", tags=["email"], responses=problems(404))
def campaign_stats(campaign_id: UUID, principal: CurrentPrincipal) -> EmailCampaignStats:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return EmailCampaignStats.model_validate(stats.stats(conn, str(campaign_id)))


@router.post("/webhooks/ses", tags=["email"], response_model_exclude_none=True,
             responses={400: problem_response(400, "Not an SNS message, or its signature does not verify")})
async def ses_notifications(request: Request) -> SesNotificationOutcome:
    """SNS (HTTPS subscription) delivers SES bounce, complaint and delivery events here; signed, not authenticated."""
    return SesNotificationOutcome.model_validate(sns.handle(await request.body()))


class SmtpProfileBody(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1000, description="write-only; stored encrypted")
    starttls: bool = True
    from_address: Email


@router.post("/smtp-profiles", status_code=201, tags=["email"])
def create_smtp_profile(body: SmtpProfileBody, principal: Admin) -> SmtpProfile:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return SmtpProfile.model_validate(smtp.save_profile(conn, principal, **body.model_dump()))


@router.get("/smtp-profiles", tags=["email"])
def list_smtp_profiles(principal: Admin) -> Page[SmtpProfile]:
    """Every profile, oldest first, in one page."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Page[SmtpProfile].model_validate({"items": smtp.list_profiles(conn), "next_cursor": None})
