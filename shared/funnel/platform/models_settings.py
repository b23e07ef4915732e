"""Request and response models of the workspace's settings (``routes_settings``, ``system_settings``)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from funnel.api.contract import Out
from funnel.api.deps import StrictModel
from funnel.platform.models import StepModelChoice
from funnel.platform.send_window import SendWindow

SmtpTls = Literal["starttls", "tls", "none"]
SMTP_TLS_DESCRIPTION = ("`starttls`: plain connection upgraded by STARTTLS (port 587); `tls`: TLS from the first "
                        "byte (port 465); `none`: no encryption (only for a server on a private network)")


class StepModelBody(StrictModel):
    """A workspace's own model for a step (checked against the LLM registry's active models)."""

    provider_id: str = Field(min_length=1, max_length=50)
    model_class: Literal["pro", "standard"] = "standard"
    model_name: str | None = Field(default=None, max_length=200)


class AiSettingsPatch(StrictModel):
    step_models: dict[str, StepModelBody | None] = Field(
        default_factory=dict, max_length=50,
        description="per step (a step of `GET /v1/llm/step-defaults`): the workspace's model, or null to go back to "
                    "the platform's default; steps not named keep their choice")


class SmtpDefaultsPatch(StrictModel):
    host: str = Field(min_length=1, max_length=255, description="a public host name or address (SSRF-checked)")
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = Field(default=None, max_length=320)
    password: str | None = Field(
        default=None, min_length=1, max_length=1000,
        description="write-only, stored encrypted, never returned. Absent: the stored one is kept while `host` "
                    "and `username` stay the same (changing either drops it); null: no password")
    tls: SmtpTls = Field(default="starttls", description=SMTP_TLS_DESCRIPTION)


class SettingsPatch(StrictModel):
    """Only the fields sent change; null clears a field."""

    base_url: str | None = Field(default=None, max_length=2000,
                                 description="the workspace's public site, an http(s) URL (SSRF-checked)")
    send_window: SendWindow | None = Field(default=None, description="the default send window (the fields not "
                                                                     "sent take their defaults)")
    shortlink_domain: str | None = Field(default=None, max_length=253,
                                         description="host name of the workspace's shortlinks, e.g. "
                                                     "`go.example.com` (links made before a change keep theirs)")
    ai: AiSettingsPatch | None = Field(default=None, description="null: every step back to the platform's default")
    smtp: SmtpDefaultsPatch | None = Field(default=None, description="replaces the SMTP defaults (see `password`)")


class SendWindowSetting(Out):
    days: list[int] = Field(description="weekdays sending is allowed on, 0 = Monday")
    start: str = Field(description="HH:MM, local time")
    end: str = Field(description="HH:MM, local time")
    timezone: str


class AiSettings(Out):
    step_models: dict[str, StepModelChoice] = Field(description="the workspace's own model per step; the steps not "
                                                                "named use the platform's default")


class SmtpDefaults(Out):
    host: str
    port: int
    username: str | None
    tls: SmtpTls = Field(description=SMTP_TLS_DESCRIPTION)
    password_set: bool = Field(description="a password is stored (it is never returned)")


class WorkspaceSettings(Out):
    base_url: str | None
    send_window: SendWindowSetting | None = Field(description="null: none set")
    shortlink_domain: str | None = Field(description="null: the product's domain")
    ai: AiSettings
    smtp: SmtpDefaults | None = Field(description="null: none set")
    updated_at: datetime | None = Field(description="the last change; null: never changed")
