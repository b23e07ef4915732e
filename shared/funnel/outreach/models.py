"""Response models of the outreach API (contacts and CSV imports, templates, the do-not-contact list, send tasks).

Each model is exactly what the service's SQL returns (``funnel.outreach.contacts`` / ``templates`` /
``tasks`` and ``funnel.platform.suppression``; columns in ``migrations/tenant/versions/outreach_0001_tables.py``):
a nullable column is a required key with a nullable value. ``Out`` forbids undeclared keys, so a new column fails
the suite until it is declared here.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from funnel.api.contract import FreeJsonObject, Out

SuppressionKind = Literal["domain", "email", "phone", "company_name", "corporate_number"]
SuppressionReason = Literal["unsubscribed", "hard_bounce", "complaint", "manual", "do_not_contact"]
TemplateType = Literal["form", "email"]
TaskMode = Literal["auto", "review"]
TaskStatus = Literal["draft", "running", "paused", "review", "completed", "cancelled", "failed"]
TargetStatus = Literal["pending", "queued", "running", "review", "approved", "rejected", "submitted", "captcha",
                       "refused", "no_form", "failed", "skipped"]
ImportStatus = Literal["pending", "running", "completed", "failed"]


# ---------------------------------------------------------------- contacts
class Contact(Out):
    """A target company. The URL is normalised; one contact per domain."""

    id: UUID
    user_id: UUID | None
    company_name: str
    default_url: str | None = Field(description="the company's site (normalised); sent to as the form's page")
    domain: str | None = Field(description="the URL's registrable host; unique among contacts")
    default_contact_person: str | None
    email: str | None = Field(description="lower-cased")
    phone: str | None = Field(description="digits only")
    corporate_number: str | None = Field(description="the 13-digit 法人番号")
    industry: str | None
    metadata: FreeJsonObject = Field(description="free-form data given when saving ({} when none)")
    created_at: datetime
    updated_at: datetime


class ContactImportRow(Out):
    """A CSV row that was not imported, and why."""

    row: int = Field(description="the line number in the file (the header is line 1)")
    status: Literal["rejected", "duplicate"] = Field(
        description="`rejected`: the row is invalid; `duplicate`: its domain is a contact already, or earlier "
                    "in the file")
    reason: str


class ContactImportOutcome(Out):
    """The answer to an upload. A small file is imported at once (`completed`, with the counts and the report);
    a large one is imported in the background (`pending`, without them): follow it with
    GET /v1/contacts/import-jobs/{import_job_id}."""

    import_job_id: UUID
    status: Literal["completed", "pending"]
    total_rows: int = Field(description="data rows in the file (without the header)")
    imported: int | None = Field(default=None, description="contacts created; absent while pending")
    duplicates: int | None = Field(default=None, description="rows whose domain is a contact already, or earlier "
                                                             "in the file; absent while pending")
    rejected: int | None = Field(default=None, description="invalid rows; absent while pending")
    report: list[ContactImportRow] | None = Field(default=None, description="every row not imported, by row "
                                                                            "number; absent while pending")


class ContactImport(Out):
    """An import job's progress and report."""

    id: UUID
    status: ImportStatus
    total_rows: int
    processed_rows: int
    imported: int
    rejected: int
    report: list[ContactImportRow] = Field(description="every row not imported, once the job is completed")
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    progress: float = Field(description="percent of the rows processed (0-100, one decimal)")


# ---------------------------------------------------------------- templates
class OutreachTemplateMetadata(Out):
    subject: str | None = Field(description="the e-mail subject (with {{variables}})")
    ai_mode: bool = Field(description="whether each message is personalised by the LLM before sending")


class OutreachTemplate(Out):
    """A message template with {{variables}} (company_name, contact_person, industry, url, sender_*)."""

    id: UUID
    user_id: UUID | None
    type: TemplateType
    title: str
    body: str
    metadata: OutreachTemplateMetadata
    is_active: bool
    created_at: datetime


# ---------------------------------------------------------------- do-not-contact
class Suppression(Out):
    """An entry of the do-not-contact list (shared with document e-mails)."""

    id: UUID
    kind: SuppressionKind
    value: str = Field(description="normalised like the contacts it matches (lower-cased, digits only, ...)")
    reason: SuppressionReason = Field(description="only `manual` and `do_not_contact` entries can be removed")
    source: str | None = Field(description="who added it, e.g. `api:<actor>` or the e-mail event")
    created_at: datetime


# ---------------------------------------------------------------- send tasks
class SendTaskSender(Out):
    """The sender profile written into the forms."""

    company: str
    department: str
    position: str
    last_name: str
    first_name: str
    last_name_kana: str
    first_name_kana: str
    email: str
    phone: str
    zip: str
    prefecture: str
    address: str
    url: str


class SendTaskWindow(Out):
    days: list[int] = Field(description="weekdays sending is allowed on, 0 = Monday")
    start: str = Field(description="HH:MM, local time")
    end: str = Field(description="HH:MM, local time")
    timezone: str


class SendTaskSettings(Out):
    """How the task sends, as it was created."""

    send_window: SendTaskWindow | None = Field(description="null: any time")
    daily_cap: int | None = Field(description="at most this many submissions a day (the tenant's); null: no cap")
    recontact_days: int = Field(description="a domain contacted within this many days is skipped")
    sender: SendTaskSender
    message: str = Field(description="the message template (with {{variables}}), rendered per target")
    subject: str | None
    ai_mode: bool
    template_id: UUID | None = Field(description="the template the message came from")


class SendTask(Out):
    """A send task: one contact form submission per target company."""

    id: UUID
    user_id: UUID | None
    name: str
    mode: TaskMode = Field(description="`review`: targets wait for approval before they are submitted")
    status: TaskStatus
    settings: SendTaskSettings
    run_id: UUID | None = Field(description="the latest run of the send pipeline")
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime


class SendTaskSummary(Out):
    """Targets by status; a status no target has is absent."""

    total: int
    pending: int = 0
    queued: int = 0
    running: int = 0
    review: int = 0
    approved: int = 0
    rejected: int = 0
    submitted: int = 0
    captcha: int = 0
    refused: int = 0
    no_form: int = 0
    failed: int = 0
    skipped: int = 0


class SendTaskLlmUsage(Out):
    """What AI personalisation of the task's targets cost (every run of the task; `ai_runs`)."""

    runs: int = Field(description="model calls")
    prompt_tokens: int
    completion_tokens: int
    cost_estimate: float = Field(description="USD, as estimated from the model's prices when it was called")


class SendTaskListItem(SendTask):
    summary: SendTaskSummary


class SendTaskDetail(SendTask):
    summary: SendTaskSummary
    llm_usage: SendTaskLlmUsage | None = Field(default=None, description="absent on the answer to a create")


class SendTargetField(Out):
    """A form field and what was filled in."""

    name: str
    semantic: str = Field(description="what the field was recognised as (e.g. `email`, `company`)")
    value: str


class DownloadLink(Out):
    """A signed link to a file (S3): anyone holding it can download the file until it expires."""

    name: str = Field(description="the file's name")
    url: str
    expires_at: datetime


class TargetAiRun(Out):
    """One model call for the target (AI personalisation)."""

    id: UUID
    step: str = Field(description="e.g. `personalize_message`")
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_estimate: float = Field(description="USD, estimated")
    created_at: datetime


class SendTarget(Out):
    """One company of a task and the outcome of its form."""

    id: UUID
    task_id: UUID
    contact_id: UUID | None = Field(description="null for targets given as URLs")
    target_url: str
    domain: str
    company_name: str | None
    subject: str | None
    message: str | None = Field(description="the rendered (and, in AI mode, personalised) message")
    status: TargetStatus
    retry_count: int
    result_summary: str | None = Field(description="what happened, or why the target was skipped")
    screenshots: list[DownloadLink] = Field(description="the filled form's screenshots (signed, expiring links)")
    fields: list[SendTargetField] | None = Field(description="the filled fields; null until attempted")
    fields_file: DownloadLink | None = Field(description="the filled fields as a JSON file (a signed, expiring "
                                                         "link); null until attempted")
    ai_runs: list[TargetAiRun] = Field(description="the model calls that personalised its message (AI mode)")
    last_attempt_at: datetime | None
    created_at: datetime
