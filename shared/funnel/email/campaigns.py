"""Document e-mail campaigns: create one (one message per recipient, suppressed addresses never sent to), read
and list them and their messages, add attachments, cancel. Sending is ``sending`` and ``delivery``, reminders
``reminders``, the figures ``stats``."""
from __future__ import annotations

import uuid
from typing import Any

from funnel import db
from funnel.db import Connection, Row
from funnel.email import store_campaigns as store
from funnel.platform import audit, storage, suppression
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.pagination import Page, decode_cursor, encode_cursor
from funnel.platform.principal import Principal
from funnel.platform.prompts import placeholders
from funnel.settings import get_settings

VARIABLES = {"name", "company_name", "email"}


def contact_recipients(conn: Connection, *, contact_ids: list[str] | None = None,
                       task_id: str | None = None) -> list[Row]:
    """Recipients from outreach contacts (by id) or from a send task's targets: every contact with an
    e-mail address; ``name`` is the contact person, ``company`` the company name."""
    rows: list[Row] = []
    if contact_ids:
        found = store.contacts_by_id(conn, contact_ids)
        if len(found) != len(set(contact_ids)):
            raise ValidationFailed.at(["body", "contact_ids"], "not contacts of this workspace")
        rows += [r for r in found if r["email"]]
    if task_id:
        if not store.task_exists(conn, task_id):
            raise ValidationFailed.at(["body", "task_id"], "not a task of this workspace")
        rows += store.task_contacts_with_email(conn, task_id)
    return rows


def unique_recipients(recipients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One recipient per normalised address (the first one given wins), with its normalised ``domain``: what the
    do-not-contact list is matched against."""
    unique: dict[str, dict[str, Any]] = {}
    for recipient in recipients:
        address = suppression.normalized("email", recipient["email"])
        unique.setdefault(address, {**recipient, "email": address,
                                    "domain": suppression.normalized("domain", address.split("@", 1)[1])})
    return list(unique.values())


def create_campaign(principal: Principal, *, name: str, subject: str, body: str, from_name: str,
                    sender_identity: str, recipients: list[dict[str, Any]], reminder_strategy: dict[str, Any] | None,
                    smtp_profile_id: str | None = None, contact_ids: list[str] | None = None,
                    task_id: str | None = None) -> Row:
    unknown = (placeholders(subject) | placeholders(body)) - VARIABLES
    if unknown:
        raise ValidationFailed(f"unknown variables {sorted(unknown)}; available: {sorted(VARIABLES)}")
    if not recipients and not contact_ids and not task_id:
        raise ValidationFailed("a campaign needs recipients, contact_ids or a task_id")
    with db.tenant_transaction(principal.tenant_id) as conn:
        everyone = list(recipients) + contact_recipients(conn, contact_ids=contact_ids, task_id=task_id)
        if not everyone:
            raise ValidationFailed("none of the given contacts has an e-mail address")
        from_address = get_settings().ses_from_address
        if smtp_profile_id:
            profile_address = store.smtp_from_address(conn, smtp_profile_id)
            if profile_address is None:
                raise ValidationFailed.at(["body", "smtp_profile_id"], "unknown smtp_profile_id")
            from_address = profile_address
        campaign = store.insert_campaign(
            conn, user_id=principal.user_id, task_id=task_id, name=name, subject=subject, body=body,
            from_name=from_name, from_address=from_address, sender_identity=sender_identity,
            reminder_strategy=reminder_strategy, smtp_profile_id=smtp_profile_id)
        unique = unique_recipients(everyone)
        store.insert_messages(conn, campaign["id"], unique)  # an address on the list is stored 'suppressed'
        audit.record(conn, principal, "email_campaign.create", "email_campaign", campaign["id"],
                     {"recipients": len(unique)})
    return campaign


def get_campaign(conn: Connection, campaign_id: str, for_update: bool = False) -> Row:
    row = store.campaign(conn, campaign_id, for_update)
    if row is None:
        raise NotFound("campaign not found")
    return row


def list_campaigns(conn: Connection, cursor: str | None, limit: int, status: str | None = None) -> Page:
    return store.campaigns_page(conn, cursor, limit, status)


def list_messages(conn: Connection, campaign_id: str, cursor: str | None, limit: int,
                  status: str | None = None) -> Page:
    """A campaign's messages by address (the campaign's unique (campaign_id, email) index is the keyset)."""
    get_campaign(conn, campaign_id)
    after = str(decode_cursor(cursor, 1)[0]) if cursor else None
    rows = store.messages_by_address(conn, campaign_id, status, after, limit + 1)
    return Page.from_rows(rows, limit, lambda r: encode_cursor([r["email"]]))


def add_attachment(principal: Principal, campaign_id: str, filename: str, content_type: str) -> dict[str, str]:
    """Register an attachment and return a presigned URL to upload it to S3 (15 minutes). Recipients get a
    tracked download link instead of the file."""
    attachment_id = uuid.uuid4().hex
    key = f"attachments/{principal.tenant_id}/{campaign_id}/{attachment_id}/{filename}"
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaign = get_campaign(conn, campaign_id, for_update=True)
        if campaign["status"] != "draft":
            raise Conflict("attachments are added before sending")
        entry = {"id": attachment_id, "key": key, "filename": filename, "content_type": content_type}
        store.append_attachment(conn, campaign_id, entry)
        audit.record(conn, principal, "email_campaign.attach", "email_campaign", campaign_id, {"filename": filename})
    upload_url = storage.s3().generate_presigned_url(
        "put_object", Params={"Bucket": get_settings().artifacts_bucket, "Key": key, "ContentType": content_type},
        ExpiresIn=900)
    return {**entry, "upload_url": upload_url}


def attachment_download(tenant_id: str, message_id: str, attachment_id: str) -> tuple[str, str] | None:
    """(filename, presigned GET URL valid 5 minutes) of a campaign attachment, or None."""
    with db.tenant_transaction(tenant_id) as conn:
        attachments = store.attachments_of_message(conn, message_id)
    for attachment in attachments:
        if attachment["id"] == attachment_id:
            return attachment["filename"], storage.presigned_url(attachment["key"], expires_in=300)
    return None


def cancel(principal: Principal, campaign_id: str) -> dict[str, Any]:
    """Stop a campaign: messages not yet sent are cancelled, no reminder goes out."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaign = get_campaign(conn, campaign_id, for_update=True)
        if campaign["status"] not in ("draft", "scheduled", "sending"):  # ended: sent, partial, failed or cancelled
            raise Conflict(f"a {campaign['status']} campaign cannot be cancelled")
        store.set_campaign_status(conn, campaign_id, "cancelled")
        cancelled = store.cancel_queued_messages(conn, campaign_id)
        store.stop_campaign_reminders(conn, campaign_id)
        audit.record(conn, principal, "email_campaign.cancel", "email_campaign", campaign_id, {"cancelled": cancelled})
    return {"campaign_id": campaign_id, "status": "cancelled", "cancelled_messages": cancelled}
