"""Outreach API: contacts (and CSV import), templates, the do-not-contact list, send tasks."""
from __future__ import annotations

from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import Field

from funnel import db
from funnel.api.contract import Page, problems
from funnel.api.deps import Admin, CurrentPrincipal, Cursor, Limit, StrictModel, Writer, page_body, page_of
from funnel.billing.limits import PLAN_LIMIT_402
from funnel.outreach import contacts, tasks, templates
from funnel.outreach.models import (
    Contact,
    ContactImport,
    ContactImportOutcome,
    OutreachTemplate,
    SendTarget,
    SendTask,
    SendTaskDetail,
    SendTaskListItem,
    Suppression,
    SuppressionKind,
    TargetStatus,
)
from funnel.platform import audit, suppression
from funnel.platform.errors import SENDING_FORBIDDEN, ValidationFailed
from funnel.platform.send_window import SendWindow

router = APIRouter(prefix="/v1")
# Targets of one task: the send pipeline carries their ids in S3, not in its state (50,000 are tested). A request
# body is at most 1 MiB (the API's limit): about 26,000 contact ids, or 50,000 short URLs.
MAX_TARGETS = 50_000
PIPELINE_UNAVAILABLE = "the send pipeline (Step Functions) cannot be reached; the task is as it was: try again"


class ContactBody(StrictModel):
    company_name: str = Field(min_length=1, max_length=300)
    url: str | None = Field(default=None, max_length=2000)
    contact_person: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=50)
    corporate_number: str | None = Field(default=None, max_length=20)
    industry: str | None = Field(default=None, max_length=200)
    metadata: dict | None = None


@router.post("/contacts", status_code=201, tags=["outreach"],
             responses=problems(409, conflict="a contact for the URL's domain exists"))
def create_contact(body: ContactBody, principal: Writer) -> Contact:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Contact.model_validate(contacts.create_contact(conn, principal, body.model_dump()))


@router.get("/contacts", tags=["outreach"])
def list_contacts(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None) -> Page[Contact]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Page[Contact].model_validate(page_body(contacts.list_contacts(conn, cursor, limit)))


@router.get("/contacts/{contact_id}", tags=["outreach"], responses=problems(404))
def get_contact(contact_id: UUID, principal: CurrentPrincipal) -> Contact:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Contact.model_validate(contacts.get_contact(conn, str(contact_id)))


@router.delete("/contacts/{contact_id}", status_code=204, tags=["outreach"], responses=problems(404))
def delete_contact(contact_id: UUID, principal: Writer) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        contacts.delete_contact(conn, principal, str(contact_id))


class ContactChanges(StrictModel):
    company_name: str | None = Field(default=None, min_length=1, max_length=300)
    url: str | None = Field(default=None, max_length=2000)
    contact_person: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=50)
    corporate_number: str | None = Field(default=None, max_length=20)
    industry: str | None = Field(default=None, max_length=200)
    metadata: dict | None = None


@router.patch("/contacts/{contact_id}", tags=["outreach"],
              responses=problems(404, 409, conflict="another contact has the URL's domain"))
def update_contact(contact_id: UUID, body: ContactChanges, principal: Writer) -> Contact:
    """Change some fields; the URL is normalised again and must stay unique per domain (409)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Contact.model_validate(contacts.update_contact(conn, principal, str(contact_id),
                                                              body.model_dump(exclude_unset=True)))


CSV_BODY = {"requestBody": {"required": True, "description": "a CSV file with a header row: a URL column (url, "
                              "website, ホームページ, ...) and a company name column (company_name, 会社名, ...); "
                              "optional contact_person, email, phone, industry, corporate_number",
                              "content": {"text/csv": {"schema": {"type": "string"}}}}}


@router.post("/contacts/import", tags=["outreach"], openapi_extra=CSV_BODY, response_model_exclude_unset=True)
async def import_contacts(request: Request, principal: Writer) -> ContactImportOutcome:
    """Send the CSV file as the body (text/csv, UTF-8 or Shift_JIS/CP932). A broken file is refused whole;
    the report lists every rejected or duplicate row and why. Large files answer with a pending job."""
    return ContactImportOutcome.model_validate(contacts.import_csv(principal, await request.body()))


@router.get("/contacts/import-jobs/{job_id}", tags=["outreach"], responses=problems(404))
def import_job(job_id: UUID, principal: CurrentPrincipal) -> ContactImport:
    """Progress and report of an import (large files import in the background)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return ContactImport.model_validate(contacts.import_job(conn, str(job_id)))


class TemplateBody(StrictModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)
    subject: str | None = Field(default=None, max_length=300)
    type: Literal["form", "email"] = "form"
    ai_mode: bool = False


@router.post("/templates", status_code=201, tags=["outreach"])
def create_template(body: TemplateBody, principal: Writer) -> OutreachTemplate:
    """Save a template; an unknown {{variable}} is refused (422)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return OutreachTemplate.model_validate(templates.save_template(
            conn, principal, title=body.title, body=body.body, subject=body.subject, template_type=body.type,
            ai_mode=body.ai_mode))


@router.get("/templates", tags=["outreach"])
def list_templates(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                   type: Literal["form", "email"] | None = None  # noqa: A002 (query name)
                   ) -> Page[OutreachTemplate]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Page[OutreachTemplate].model_validate(page_body(templates.list_templates(conn, cursor, limit, type)))


class TemplateChanges(StrictModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=20_000)
    subject: str | None = Field(default=None, max_length=300)
    ai_mode: bool | None = None
    is_active: bool | None = None


@router.patch("/templates/{template_id}", tags=["outreach"], responses=problems(404))
def update_template(template_id: UUID, body: TemplateChanges, principal: Writer) -> OutreachTemplate:
    """Change some fields; unknown variables are refused (422) as when saving."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return OutreachTemplate.model_validate(templates.update_template(conn, principal, str(template_id),
                                                                         body.model_dump(exclude_unset=True)))


@router.delete("/templates/{template_id}", status_code=204, tags=["outreach"], responses=problems(404))
def delete_template(template_id: UUID, principal: Writer) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        templates.delete_template(conn, principal, str(template_id))


@router.get("/templates/{template_id}", tags=["outreach"], responses=problems(404))
def get_template(template_id: UUID, principal: CurrentPrincipal) -> OutreachTemplate:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return OutreachTemplate.model_validate(templates.get_template(conn, str(template_id)))


class SuppressionBody(StrictModel):
    kind: SuppressionKind
    value: str = Field(min_length=1, max_length=500)
    reason: Literal["manual", "do_not_contact", "unsubscribed", "hard_bounce", "complaint"] = "do_not_contact"


@router.post("/do-not-contact", status_code=201, tags=["outreach"])
def add_suppression(body: SuppressionBody, principal: Admin) -> Suppression:
    """Add (or re-reason) an entry; the value is normalised like the contacts it matches (422 when empty)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        row = suppression.suppress(conn, body.kind, body.value, body.reason, f"api:{principal.actor}")
        audit.record(conn, principal, "suppression.add", "suppression", row["id"], {"kind": body.kind})
        return Suppression.model_validate(row)


@router.get("/do-not-contact", tags=["outreach"])
def list_suppressions(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                      kind: SuppressionKind | None = None) -> Page[Suppression]:
    """The do-not-contact list, shared with document e-mails (unsubscribes, bounces, complaints)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Page[Suppression].model_validate(page_body(suppression.list_suppressions(conn, cursor, limit, kind)))


@router.delete("/do-not-contact/{suppression_id}", status_code=204, tags=["outreach"],
               responses=problems(404, 409, conflict="unsubscribes, bounces and complaints cannot be removed"))
def remove_suppression(suppression_id: UUID, principal: Admin) -> None:
    """Only manual / do_not_contact entries can be removed; unsubscribes, bounces and complaints stay (409)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        row = suppression.remove_suppression(conn, str(suppression_id))
        audit.record(conn, principal, "suppression.remove", "suppression", row["id"], {"kind": row["kind"]})


class SenderBody(StrictModel):
    company: str = Field(min_length=1, max_length=200)
    department: str = ""
    position: str = ""
    last_name: str = Field(min_length=1, max_length=100)
    first_name: str = Field(min_length=1, max_length=100)
    last_name_kana: str = ""
    first_name_kana: str = ""
    email: str = Field(min_length=3, max_length=320)
    phone: str = ""
    zip: str = ""
    prefecture: str = ""
    address: str = ""
    url: str = ""


class TaskBody(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    mode: Literal["auto", "review"] = "auto"
    sender: SenderBody
    message: str | None = Field(default=None, max_length=20_000)
    subject: str | None = Field(default=None, max_length=300)
    template_id: UUID | None = None
    contact_ids: list[UUID] = Field(default_factory=list, max_length=MAX_TARGETS,
                                    description="e.g. the contacts a CSV import created (POST /v1/contacts/import)")
    urls: list[str] = Field(default_factory=list, max_length=MAX_TARGETS)
    send_window: SendWindow | None = None
    daily_cap: int | None = Field(default=None, ge=1, le=100_000)
    recontact_days: int = Field(default=180, ge=0, le=3650)


@router.post("/tasks", status_code=201, tags=["outreach"], response_model_exclude_unset=True,
             responses=problems(404, not_found="`template_id` names no template"))
def create_task(body: TaskBody, principal: Writer) -> SendTaskDetail:
    """Create a task over contacts and/or URLs (one target per domain); suppressed or recently contacted
    targets are created as `skipped`. 422 for unknown contact_ids, unsafe URLs or unknown variables."""
    settings = {"send_window": body.send_window.model_dump() if body.send_window else None,
                "daily_cap": body.daily_cap, "recontact_days": body.recontact_days}
    task = tasks.create_task(principal, name=body.name, mode=body.mode, sender=body.sender.model_dump(),
                             message=body.message, subject=body.subject,
                             template_id=str(body.template_id) if body.template_id else None,
                             contact_ids=[str(c) for c in body.contact_ids], urls=body.urls, settings=settings)
    with db.tenant_transaction(principal.tenant_id) as conn:
        return SendTaskDetail.model_validate({**task, "summary": tasks.summary(conn, str(task["id"]))})


@router.get("/tasks", tags=["outreach"], response_model_exclude_unset=True)
def list_tasks(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None) -> Page[SendTaskListItem]:
    """Newest first, each with its targets counted by status (`summary`)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(SendTaskListItem, tasks.list_tasks(conn, cursor, limit))


@router.get("/tasks/{task_id}", tags=["outreach"], response_model_exclude_unset=True, responses=problems(404))
def get_task(task_id: UUID, principal: CurrentPrincipal) -> SendTaskDetail:
    """The task with its targets counted by status and what its AI personalisation cost (`llm_usage`)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return SendTaskDetail.model_validate({**tasks.get_task(conn, str(task_id)),
                                              "summary": tasks.summary(conn, str(task_id)),
                                              "llm_usage": tasks.llm_usage(conn, str(task_id))})


@router.get("/tasks/{task_id}/targets", tags=["outreach"], responses=problems(404))
def list_targets(task_id: UUID, principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                 status: TargetStatus | None = None) -> Page[SendTarget]:
    """The task's targets in the order they were added (of one `status` when given), a page at a time; their
    screenshots and filled fields are signed links that expire after 15 minutes (list again for fresh ones)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(SendTarget, tasks.list_targets(conn, str(task_id), status, cursor, limit))


class TargetChanges(StrictModel):
    subject: str | None = Field(default=None, max_length=300)
    message: str | None = Field(default=None, min_length=1, max_length=20_000)


@router.patch("/tasks/{task_id}/targets/{target_id}", tags=["outreach"],
              responses=problems(404, 409, not_found="the task or target is not found",
                                 conflict="the target is not waiting for review"))
def edit_target(task_id: UUID, target_id: UUID, body: TargetChanges, principal: Writer) -> SendTarget:
    """A reviewer changes the subject and/or message of a target waiting for review; approving it then sends
    the changed text (the form is filled afresh). 409 once it is approved, rejected or sent."""
    changes = body.model_dump(exclude_unset=True)
    if "message" in changes and changes["message"] is None:
        raise ValidationFailed.at(["body", "message"], "a target's message cannot be removed")
    return SendTarget.model_validate(tasks.edit_target(principal, str(task_id), str(target_id), changes))


@router.post("/tasks/{task_id}/start", tags=["outreach"],
             responses=problems(402, 403, 404, 409, 503, payment_required=PLAN_LIMIT_402,
                                conflict="the task is running, completed or cancelled, or has no pending (after "
                                         "review: approved) targets",
                                unavailable=PIPELINE_UNAVAILABLE, forbidden=SENDING_FORBIDDEN))
def start_task(task_id: UUID, principal: Writer) -> SendTask:
    """Start, resume a paused task, or (review mode) send the approved targets."""
    return SendTask.model_validate(tasks.start(principal, str(task_id)))


@router.post("/tasks/{task_id}/resume", tags=["outreach"],
             responses=problems(402, 403, 404, 409, 503, payment_required=PLAN_LIMIT_402,
                                conflict="the task is not paused, or has nothing left to send",
                                unavailable=PIPELINE_UNAVAILABLE, forbidden=SENDING_FORBIDDEN))
def resume_task(task_id: UUID, principal: Writer) -> SendTask:
    """Start a paused task again (409 unless paused)."""
    return SendTask.model_validate(tasks.resume(principal, str(task_id)))


@router.post("/tasks/{task_id}/pause", tags=["outreach"],
             responses=problems(404, 409, conflict="the task is not running"))
def pause_task(task_id: UUID, principal: Writer) -> SendTask:
    return SendTask.model_validate(tasks.pause(principal, str(task_id)))


@router.post("/tasks/{task_id}/cancel", tags=["outreach"],
             responses=problems(404, 409, conflict="the task is already completed or cancelled"))
def cancel_task(task_id: UUID, principal: Writer) -> SendTask:
    """Stop the task; its targets not yet sent are skipped."""
    return SendTask.model_validate(tasks.cancel(principal, str(task_id)))


REVIEW_PROBLEMS = problems(404, 409, not_found="the task is not found",
                           conflict="the target is not waiting for review (or is not the task's)")


@router.post("/tasks/{task_id}/targets/{target_id}/approve", tags=["outreach"], responses=REVIEW_PROBLEMS)
def approve_target(task_id: UUID, target_id: UUID, principal: Writer) -> SendTarget:
    return SendTarget.model_validate(tasks.review_target(principal, str(task_id), str(target_id), True))


@router.post("/tasks/{task_id}/targets/{target_id}/reject", tags=["outreach"], responses=REVIEW_PROBLEMS)
def reject_target(task_id: UUID, target_id: UUID, principal: Writer) -> SendTarget:
    return SendTarget.model_validate(tasks.review_target(principal, str(task_id), str(target_id), False))
