"""Settings, read once from the environment (prefix ``FUNNEL_``).

Logic receives a ``Settings`` object; nothing outside this module reads
``os.environ``. In production the SAM template sets these variables (RDS Proxy
endpoint, secret ARNs, queue URLs, state machine ARNs); locally ``funnel dev``
and the test fixtures set the same variables to local endpoints. The code path
is the same: only endpoints and credentials differ.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FUNNEL_", extra="ignore")

    region: str = Field(default="us-east-1", validation_alias="AWS_REGION")

    # --- databases -------------------------------------------------------
    # Control DB as the application role (no superuser, owns no tenant table).
    control_database_url: str = "postgresql://funnel_app@127.0.0.1:5433/funnel_control"
    # Owner role, used only by migrations and tenant provisioning.
    admin_database_url: str = "postgresql://postgres@127.0.0.1:5433/postgres"
    # Secrets Manager secret holding {"username", "password"} of the app role (production).
    db_app_secret_id: str | None = None
    db_admin_secret_id: str | None = None
    app_db_role: str = "funnel_app"
    db_pool_max_size: int = 4
    tenant_directory_ttl_seconds: float = 60.0

    # --- secrets ---------------------------------------------------------
    jwt_secret_id: str = "funnel/jwt-signing-key"
    data_key_secret_id: str = "funnel/data-encryption-key"
    tracking_secret_id: str = "funnel/tracking-signing-key"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    secret_cache_ttl_seconds: float = 300.0

    # --- AWS resources (names/ARNs/URLs injected by template.yaml) -------
    artifacts_bucket: str = "funnel-artifacts"
    notifications_queue_url: str | None = None
    email_queue_url: str | None = None
    tracking_events_queue_url: str | None = None
    contact_import_queue_url: str | None = None
    activity_import_queue_url: str | None = None
    community_touches_queue_url: str | None = None
    article_pipeline_arn: str | None = None
    send_pipeline_arn: str | None = None
    scheduler_group: str = "funnel"
    scheduler_role_arn: str = "arn:aws:iam::123456789012:role/funnel-scheduler"
    content_schedule_target_arn: str | None = None
    ses_configuration_set: str | None = None
    ses_from_address: str = "no-reply@funnel.example.com"

    # --- billing -------------------------------------------------------------
    # Secrets Manager secret {"api_key": "sk_...", "webhook_secret": "whsec_..."}.
    stripe_secret_id: str = "funnel/stripe"
    # Stripe API endpoint; unset means Stripe's own (a local Stripe-compatible server in tests).
    stripe_api_base: str | None = None
    # Where the hosted frontend lives: checkout return URLs must stay on it (no open redirects).
    frontend_origin: str = "http://localhost:3000"
    # A Stripe-Signature older than this is refused (stripe.Webhook's tolerance): a captured delivery cannot be
    # replayed later. Stripe's own libraries use 300 s.
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    # A past_due subscription keeps working this long after its first failed payment (Stripe retries the card
    # meanwhile); then sending and generation stop (402) until an invoice is paid.
    billing_past_due_grace_days: int = Field(default=7, ge=0, le=60)
    # The Stripe trial a workspace's first Checkout starts with (0: none); trial_will_end tells the owners.
    billing_trial_days: int = Field(default=14, ge=0, le=90)

    # --- document e-mails ------------------------------------------------------
    # Per-tenant sending limits over rolling windows (SES sandbox-like defaults); a throttled message
    # is queued again after email_throttle_delay_seconds, never dropped.
    email_max_per_second: int = 14
    email_max_per_day: int = 50_000
    email_throttle_delay_seconds: int = 30
    # Extra CA bundle trusted for SMTP STARTTLS (a private relay's CA; tests' self-signed server).
    smtp_ca_file: str | None = None

    # --- SES notifications through SNS ----------------------------------------
    # Where SNS signing certificates (and subscription confirmations) may come from.
    sns_trusted_url_pattern: str = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
    soft_bounce_threshold: int = 3

    # --- deploys: CloudFormation's custom resource (funnel.platform.operations_deploy) ------------------------
    # Where its answer may be PUT: CloudFormation's pre-signed response bucket URLs (tests: a local server).
    cfn_response_url_pattern: str = (r"^https://cloudformation-custom-resource-response-[a-z0-9]+"
                                     r"\.s3([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?/")

    # --- outreach ------------------------------------------------------------
    # CSV imports with more rows than this run as a background job.
    contact_import_sync_rows: int = 1000

    # --- community -----------------------------------------------------------
    # GitHub's REST API, which the GitHub pull plugin reads (a GitHub Enterprise Server's /api/v3, or a local
    # server speaking its shapes in tests); every request passes the SSRF guard.
    github_api_url: str = "https://api.github.com"

    # --- notifications -------------------------------------------------------
    # First retry after this many seconds, then x4 per retry (capped at 15 minutes).
    notification_retry_base_seconds: int = 30

    # --- HTTP --------------------------------------------------------------
    public_base_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = 1_048_576
    # The bulk routes (funnel.api.context.BULK_BODY_PATHS: an activity batch of up to 10,000 items, an activity CSV):
    # under Lambda's 6 MB invocation payload once API Gateway has base64-encoded the body (x 4/3).
    max_bulk_body_bytes: int = 4_194_304
    ssrf_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- limits ------------------------------------------------------------
    login_max_attempts_per_account: int = 5
    login_max_attempts_per_ip: int = 20
    login_window_seconds: int = 900

    # --- accounts (issue #18) -------------------------------------------------
    # The stack's PlatformOperationsFunction (inside the VPC): sign-up provisions through it, and the
    # workspace export and the deletion purge run there.
    operations_function_name: str = "funnel-platform-operations"
    # sign-up and e-mail verification (funnel.platform.signup)
    # Where self-service workspaces go: "pool" (a place in a shared, RLS-separated database: cheap, instant)
    # until an operator moves one to its own database (`funnel tenants move`); "silo" gives each its own.
    signup_isolation: Literal["pool", "silo"] = "pool"
    # Sign-ups per client address in a window: a team signing up from one office passes, a script does not.
    signup_max_per_ip: int = 5
    signup_window_seconds: int = 3600
    # How long a verification link works, and how many new ones a user may ask for in a window (each mails).
    verify_email_ttl_seconds: int = 48 * 3600
    verify_email_resend_max: int = 3
    verify_email_resend_window_seconds: int = 3600
    # password reset and change (funnel.platform.recovery)
    # Reset requests per client address and per e-mail address in a window (whether the address exists or not,
    # so a refusal reveals nothing): enough for a user who retries, too few to mail-bomb an inbox.
    password_reset_max_per_ip: int = 20
    password_reset_max_per_address: int = 5
    password_reset_window_seconds: int = 3600
    # Every reset request answers no sooner than this after it arrived, whether mails were sent or not, so the
    # time of the answer does not tell whether the address has an account.
    password_reset_answer_seconds: float = 0.3
    # sign-in with an OpenID provider (funnel.platform.oidc)
    # The OpenID providers users may sign in with, as JSON: [{"id": "google", "issuer":
    # "https://accounts.google.com", "client_id": "...", "client_secret_id": "<Secrets Manager id, optional>",
    # "scopes": ["openid", "email"]}]. Any OIDC issuer; none configured means no such sign-in.
    oidc_providers: list[dict[str, object]] = Field(default_factory=list)
    # Where a provider may send the browser back (JSON list, exact match only: no open redirects); empty means
    # the hosted frontend's page, frontend_origin + "/auth/callback".
    oidc_redirect_uris: list[str] = Field(default_factory=list)
    # Extra CA bundle trusted for the providers' HTTPS (a private issuer's CA; tests' self-signed provider).
    oidc_ca_file: str | None = None
    # workspace export (funnel.platform.export)
    # How long an export's download link (a presigned S3 GET) works: long enough to start a large download,
    # short enough that a link copied into a chat or a log is soon worthless.
    export_link_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # How long an archive is kept: the ArtifactsBucket's lifecycle rule on exports/ deletes it then, and no
    # link is given for an older one (docs/export.md).
    export_retention_days: int = Field(default=7, ge=1, le=365)
    # A pending or running export without progress for this long has died (the operations function's timeout
    # is 900 s; every table moves the run): the next POST /v1/export ends it failed instead of answering 409.
    export_stale_seconds: int = Field(default=1200, ge=60)
    # workspace deletion (funnel.platform.deletion)
    # How long a workspace whose owner asked for its deletion keeps working (and can be restored by cancelling)
    # before the hourly purge removes it: two weeks covers a holiday and a second owner's second thoughts.
    workspace_deletion_grace_days: int = Field(default=14, ge=0, le=365)

    # --- LLM ---------------------------------------------------------------
    # "step=provider:model_class,..." overrides step_llm_defaults (for example in tests).
    llm_step_overrides: str = ""
    llm_api_keys_secret_id: str = "funnel/llm-api-keys"
    # The "offline" provider (deterministic placeholder text, no LLM called) may be chosen only where this
    # is true: the local runtime and tests set it, template.yaml never does, so no deployed stage can
    # resolve a step to it or publish its placeholder text.
    allow_offline_llm: bool = False

    @field_validator("ssrf_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the local runtime change the environment)."""
    get_settings.cache_clear()
