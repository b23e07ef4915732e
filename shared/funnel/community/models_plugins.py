"""Community API models: plugins (GitHub, generic signed webhooks), their runs, their archived raw events, the
webhook receipt, and what a generic webhook delivery carries."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints

from funnel.api.contract import FreeJsonObject, Out
from funnel.api.deps import StrictModel
from funnel.community.models_activities import ActivityAccount, ActivityResource

PluginKind = Literal["github", "webhook"]
RunTrigger = Literal["cron", "manual", "webhook"]
RunStatus = Literal["running", "success", "failed", "partial"]
SecretName = Literal["webhook_secret", "token"]
# GitHub's owner/name: owners are 1-39 of [A-Za-z0-9-], repository names 1-100 of [A-Za-z0-9._-].
REPOSITORY_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$"
MAX_WEBHOOK_EVENTS = 1000
RepositoryName = Annotated[str, StringConstraints(pattern=REPOSITORY_PATTERN)]


# ---------------------------------------------------------------- configuration (per kind)

class GithubConfig(StrictModel):
    """A GitHub plugin: webhooks from any repository or organisation it is installed on, and the hourly pull of
    the configured repositories' stargazers and issues."""
    repositories: list[RepositoryName] = Field(default_factory=list, max_length=50,
                                               examples=[["octo-org/octo-repo"]],
                                               description="owner/name of the repositories to pull (none: webhooks "
                                                           "only)")
    pull_stargazers: bool = True
    pull_issues: bool = True


class WebhookConfig(StrictModel):
    """A generic signed webhook: any source posting events in Funnel's shape."""
    source: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,49}$",
                               description="the activities' source (default: the plugin's key)")


class PluginSecrets(StrictModel):
    """Write-only: stored encrypted, never answered (only whether each is set, with its last characters)."""
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=200,
                                       description="signs the webhook deliveries (generated when left out)")
    token: str | None = Field(default=None, min_length=1, max_length=500,
                              description="GitHub: a token for the REST pull (fine-grained, read-only)")


class PluginBody(StrictModel):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", examples=["github-main"])
    name: str = Field(min_length=1, max_length=200)
    kind: PluginKind
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict, description="GithubConfig or WebhookConfig, by kind")
    secrets: PluginSecrets | None = None


class PluginPatchBody(StrictModel):
    """Only what is given changes; ``config`` is replaced whole; a secret given as null is removed."""
    key: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None
    config: dict[str, Any] | None = None
    secrets: dict[SecretName, str | None] | None = None


# ---------------------------------------------------------------- answers

class SecretHint(Out):
    set: Literal[True]
    hint: str = Field(description="the last 4 characters of a long secret, else '****'")


class Plugin(Out):
    plugin_id: UUID
    key: str
    name: str
    kind: PluginKind
    enabled: bool
    config: FreeJsonObject
    state: FreeJsonObject = Field(description="where the pull resumes (cursors per repository, rate-limit reset)")
    secrets: dict[str, SecretHint]
    has_secret: bool = Field(description="a webhook secret is set (deliveries are refused without one)")
    webhook_url: str = Field(description="where the source posts its deliveries (GitHub: content type "
                                         "application/json, the webhook secret as the secret)")
    created_at: datetime
    updated_at: datetime


class PluginCreated(Plugin):
    webhook_secret: str | None = Field(description="the generated webhook secret, shown in this answer only "
                                                   "(null when the request gave one)")


class PluginRun(Out):
    run_id: UUID
    plugin_id: UUID
    trigger: RunTrigger
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    result: FreeJsonObject


class PluginEvent(Out):
    raw_id: UUID
    plugin_id: UUID
    run_id: UUID | None
    event_type: str | None
    dedup_key: str | None
    received_at: datetime
    preview: str = Field(description="the payload's first 200 characters of JSON")


class PluginEventDetail(Out):
    raw_id: UUID
    plugin_id: UUID
    run_id: UUID | None
    event_type: str | None
    dedup_key: str | None
    received_at: datetime
    payload: Any


class WebhookReceipt(Out):
    """What a webhook delivery left: archived (or a duplicate of an archived one) and what became activities."""
    status: Literal["processed", "duplicate", "archived", "not_understood"] = Field(
        description="processed: archived and ingested; duplicate: this delivery was recorded before (nothing "
                    "changed); archived: an event type that makes no activity; not_understood: archived, but the "
                    "payload is not what this event type carries")
    raw_id: UUID | None
    run_id: UUID | None
    event_type: str | None
    activities: int = Field(description="activities inserted (duplicates of earlier ones are not counted)")
    duplicates: int
    detail: str | None = None


# ---------------------------------------------------------------- generic webhook deliveries

class WebhookEventIn(StrictModel):
    account: ActivityAccount
    action: str = Field(min_length=1, max_length=100)
    occurred_at: AwareDatetime
    resource: ActivityResource | None = None
    metadata: dict[str, Any] | None = None
    dedup_key: str | None = Field(default=None, min_length=1, max_length=500)


class WebhookDeliveryIn(StrictModel):
    events: list[WebhookEventIn] = Field(min_length=1, max_length=MAX_WEBHOOK_EVENTS)
