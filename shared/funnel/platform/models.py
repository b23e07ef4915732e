"""Response models of the platform API (auth, users, API keys, audit log, runs, prompts, LLM registry).

Field types follow the columns the services select (migrations/tenant/versions/0001_platform.py and
migrations/control/versions/0001_control_base.py): a nullable column is a required, nullable field.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from funnel.api.contract import Out

Role = Literal["owner", "admin", "member", "viewer"]
ApiKeyScope = Literal["read", "write", "admin"]
RunStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]
StepStatus = Literal["pending", "running", "completed", "failed", "skipped"]
ModelClass = Literal["pro", "standard"]


# ---------------------------------------------------------------- auth

class TokenPair(Out):
    """A signed-in session: send `access_token` as `Authorization: Bearer`, renew it with the refresh token."""

    access_token: str = Field(description="JWT for `Authorization: Bearer`")
    refresh_token: str = Field(description="JWT for POST /v1/auth/refresh, usable once: each refresh answers a "
                                           "new one, and presenting a spent one again ends the session")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds until the access token expires")


# ---------------------------------------------------------------- users

class User(Out):
    id: UUID
    email: str
    display_name: str | None
    role: Role
    max_concurrency: int = Field(description="how many browser jobs of this user may run at once (1-50)")
    auth_provider: str = Field(description="how the user last signed in: `password`, or the id of an "
                                           "OpenID provider (`google`)")
    last_login_at: datetime | None
    disabled: bool = Field(description="a disabled user can neither sign in nor use their API keys")
    invited_at: datetime | None = Field(description="when the pending invitation was sent; null once accepted "
                                                    "(or for users created with a password)")
    created_at: datetime
    updated_at: datetime


class CurrentUser(User):
    """The caller: their user, their workspace and the role this request acts with."""

    tenant_id: str = Field(description="the workspace's id")
    effective_role: Role = Field(description="the role this request has: the user's role, capped by the API "
                                             "key's scope when called with an API key")
    api_key_id: UUID | None = Field(description="the API key used for this request; null with a bearer token")


class UserInvited(User):
    invite_token: str = Field(description="shown once: the invitee sets a password with POST "
                                          "/v1/auth/accept-invite (valid for 7 days)")


# ---------------------------------------------------------------- API keys

class ApiKey(Out):
    id: UUID
    name: str
    prefix: str = Field(description="the public part of the key (`fnl_<prefix>_...`), to recognise it")
    scope: ApiKeyScope = Field(description="the highest role the key acts with: read=viewer, write=member, "
                                           "admin=admin (never above its creator's role)")
    created_by: UUID | None
    created_at: datetime
    last_used_at: datetime | None = Field(description="updated at most once a minute")
    expires_at: datetime | None = Field(description="null: never expires")
    revoked_at: datetime | None = Field(description="set once revoked; a revoked key is refused")


class ApiKeyCreated(ApiKey):
    key: str = Field(description="the whole key, shown once (send it as `X-Api-Key`); only its hash is stored")


# ---------------------------------------------------------------- audit log

class AuditLogEntry(Out):
    id: int
    user_id: str = Field(description="who: a user id, `apikey:<id>` for an API key, or `system`")
    action: str = Field(description="e.g. `user.update`, `api_key.create`")
    resource_type: str
    resource_id: str
    details: dict[str, Any] | None = Field(description="what changed (depends on the action)")
    ip: str | None
    created_at: datetime


# ---------------------------------------------------------------- runs

class RunProgress(Out):
    steps_done: int
    steps_total: int
    percent: float | None = Field(description="0-100, one decimal; null while the number of steps is unknown")


class RunRecord(Out):
    """A long job (one state machine execution), as its row stands."""

    id: UUID
    kind: str = Field(description="what kind of job, e.g. `article_pipeline`, `send_pipeline`")
    status: RunStatus
    current_step: str | None
    config: dict[str, Any] | None = Field(description="the job's input and state (depends on `kind`)")
    execution_arn: str | None = Field(description="the state machine execution; null until started")
    steps_total: int
    steps_done: int
    error_message: str | None
    created_by: UUID | None = Field(description="the user who started it; null for schedules and API keys")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Run(RunRecord):
    """A long job with its progress (what GET /v1/runs and /v1/runs/{id} answer)."""

    progress: RunProgress


class TokenUsage(Out):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RunStep(Out):
    """One step of a run (per item for fanned-out steps)."""

    id: int
    run_id: UUID
    step: str
    item_key: str = Field(description="the item of a fanned-out step; empty for a run's single step")
    status: StepStatus
    llm_model: str | None = Field(description="the model that answered, when the step called one")
    token_usage: TokenUsage | None
    cost_usd: float
    error_message: str | None
    retry_count: int
    started_at: datetime
    completed_at: datetime | None


class RunStepList(Out):
    items: list[RunStep] = Field(description="in the order the steps started")


class ArtifactMetadata(Out):
    bytes: int = Field(description="the file's size")
    item_key: str
    content_type: str | None = Field(default=None, description="files only (absent for step outputs)")


class RunArtifact(Out):
    """A file a step stored (its JSON output, screenshots, images)."""

    id: int
    run_id: UUID
    step: str
    file_type: str = Field(description="`json` for a step's output, else the file's type (e.g. `png`)")
    file_path: str
    digest: str | None = Field(description="SHA-256 of the file")
    metadata: ArtifactMetadata | None
    created_at: datetime
    download_url: str = Field(description="a presigned URL, valid for 15 minutes")


class RunArtifactList(Out):
    items: list[RunArtifact]


# ---------------------------------------------------------------- prompts

class Prompt(Out):
    """One version of a step's prompt; at most one version per step is active."""

    id: int
    step: str
    version: int
    content: str = Field(description="the template, with `{{variable}}` placeholders")
    variables: list[str]
    is_active: bool
    created_by: str | None
    created_at: datetime


class PromptList(Out):
    items: list[Prompt] = Field(description="by step, newest version first")


# ---------------------------------------------------------------- LLM registry

class LlmProvider(Out):
    id: str
    display_name: str
    api_base_url: str | None
    is_offline: bool = Field(description="the deterministic offline provider (no model is called)")
    is_active: bool


class LlmProviderList(Out):
    items: list[LlmProvider]


class LlmModel(Out):
    id: int
    provider_id: str
    model_name: str
    model_class: ModelClass
    input_cost_per_mtok: float = Field(description="USD per million input tokens")
    output_cost_per_mtok: float = Field(description="USD per million output tokens")
    is_active: bool


class LlmModelList(Out):
    items: list[LlmModel]


class StepModelChoice(Out):
    """A workspace's own model for a step."""

    provider_id: str
    model_class: ModelClass = Field(default="standard")
    model_name: str | None = Field(default=None, description="a specific model; absent: the provider's model "
                                                              "of `model_class`")


class StepLlmDefault(Out):
    step: str
    provider_id: str = Field(description="the platform default")
    model_class: ModelClass
    tenant_override: StepModelChoice | None = Field(description="the workspace's own choice, which wins; "
                                                                "null when it uses the default")


class StepLlmDefaultList(Out):
    items: list[StepLlmDefault]


class TenantStepModel(StepModelChoice):
    step: str
