"""The public contract through which other areas tell the community area that a person or a company was touched:
a typed message on the community touches queue (``CommunityTouchesQueue``), made an activity by
``CommunityTouchesFunction`` (``funnel.community.crossarea.record``).

This is the one community module other areas may import (pyproject.toml's import-linter contract names it). It
imports only pydantic, the settings and boto3 (lazily, through ``funnel.platform.aws``): e-mail's tracking
function loads it on its first human click, so it must stay small, and it must never reach the community area's
internals. Sending is fire-and-forget after the sender's own transaction committed: a touch is derived data, and
the click redirect or the form submission it comes from never waits for, or fails because of, the community area
(README-identity-across.md).
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Touch(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: UUID
    touch_id: str = Field(min_length=1, max_length=400,
                          description="stable for one real-world event: a redelivered or resent touch is one activity")
    occurred_at: datetime


class EmailClick(_Touch):
    """A person (not a machine: e-mail tracking's traffic rules decided) clicked a tracked link of a campaign mail."""

    kind: Literal["email_click"] = "email_click"
    email: str = Field(max_length=320, description="the recipient's address as the campaign sent to it")
    name: str | None = Field(default=None, max_length=300)
    company: str | None = Field(default=None, max_length=300)
    email_campaign_id: UUID
    email_message_id: UUID
    url: str | None = Field(default=None, max_length=4000, description="the link's target")
    reminder_round: int | None = None


class FormSubmission(_Touch):
    """An outreach browser worker submitted a message into a company's contact form."""

    kind: Literal["form_submission"] = "form_submission"
    domain: str = Field(max_length=253, description="the company's domain (the target's)")
    company_name: str | None = Field(default=None, max_length=300)
    contact_id: UUID | None = None
    contact_email: str | None = Field(default=None, max_length=320)
    task_id: UUID
    target_id: UUID
    target_url: str | None = Field(default=None, max_length=4000)
    urls: list[str] = Field(default_factory=list, max_length=50,
                            description="the links the submitted message carried (shortlinks among them)")


Touch = Annotated[EmailClick | FormSubmission, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[EmailClick | FormSubmission] = TypeAdapter(Touch)


def parse(body: str) -> EmailClick | FormSubmission:
    """A queued message back as its touch (pydantic.ValidationError when it is not one)."""
    return _ADAPTER.validate_json(body)


def send(touch: EmailClick | FormSubmission) -> bool:
    """Queue ``touch``; False (logged, counted) when it could not be: the caller's own work is done and stays done.
    Without a configured queue nothing is sent (a deployment without the community consumer)."""
    from funnel.settings import get_settings

    queue_url = get_settings().community_touches_queue_url
    if not queue_url:
        return False
    try:
        from funnel.platform import aws

        # fail-fast timeouts: a click redirect waits on this call
        aws.client("sqs", request_path=True).send_message(QueueUrl=queue_url, MessageBody=touch.model_dump_json())
        return True
    except Exception:  # SQS unreachable: the click or the submission must not fail for a derived record
        from funnel.observability import count, logger

        logger.warning("community touch not queued", extra={"kind": touch.kind, "touch_id": touch.touch_id},
                       exc_info=True)
        count("CommunityTouchesLost", tenant_id=str(touch.tenant_id))
        return False


def links_in(text: str | None, limit: int = 50) -> list[str]:
    """The http(s) links of a message, in order, each once (what a form submission touch carries)."""
    import re

    found = re.findall(r"https?://[^\s<>\"'）」』、。]+", text or "")
    return list(dict.fromkeys(u.rstrip(".,;:!?)]}") for u in found))[:limit]


__all__ = ["EmailClick", "FormSubmission", "Touch", "links_in", "parse", "send"]
