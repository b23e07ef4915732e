"""Tenant DB, platform branch: users, api_keys, audit_logs, runs, steps, artifacts,
prompts, system_settings, idempotency_keys.

Revision ID: t0001_platform
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0001_platform"
down_revision = None
branch_labels = ("platform",)
depends_on = None

TABLES = ("users", "api_keys", "audit_logs", "runs", "steps", "artifacts", "prompts",
          "system_settings", "idempotency_keys")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS citext")
    op.execute(f"""
    CREATE TABLE users (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        email citext NOT NULL,
        display_name text,
        password_hash text,
        role text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
        max_concurrency smallint NOT NULL DEFAULT 2 CHECK (max_concurrency BETWEEN 1 AND 50),
        auth_provider text NOT NULL DEFAULT 'password',
        last_login_at timestamptz,
        disabled boolean NOT NULL DEFAULT false,
        invited_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT users_tenant_email_unique UNIQUE (tenant_id, email)
    )""")
    op.execute(f"""
    CREATE TABLE api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        prefix text NOT NULL UNIQUE,
        hashed_key text NOT NULL,
        scope text NOT NULL DEFAULT 'write' CHECK (scope IN ('read', 'write', 'admin')),
        created_by uuid REFERENCES users(id),
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        expires_at timestamptz,
        revoked_at timestamptz
    )""")
    op.execute(f"""
    CREATE TABLE audit_logs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        {TENANT_ID},
        user_id text NOT NULL,
        action text NOT NULL,
        resource_type text NOT NULL,
        resource_id text NOT NULL,
        details jsonb,
        ip text,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX audit_logs_tenant_created ON audit_logs (tenant_id, created_at DESC, id DESC)")
    op.execute("CREATE INDEX audit_logs_tenant_user ON audit_logs (tenant_id, user_id, created_at DESC)")
    op.execute("CREATE INDEX audit_logs_tenant_resource ON audit_logs (tenant_id, resource_type, resource_id)")
    op.execute(f"""
    CREATE TABLE runs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        kind text NOT NULL,
        status text NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
        current_step text,
        config jsonb,
        execution_arn text,
        steps_total integer NOT NULL DEFAULT 0,
        steps_done integer NOT NULL DEFAULT 0,
        error_message text,
        created_by uuid REFERENCES users(id),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
    )""")
    op.execute("CREATE INDEX runs_tenant_created ON runs (tenant_id, created_at DESC, id DESC)")
    op.execute(f"""
    CREATE TABLE steps (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        {TENANT_ID},
        run_id uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step text NOT NULL,
        item_key text NOT NULL DEFAULT '',
        status text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'skipped')),
        llm_model text,
        token_usage jsonb,
        cost_usd numeric(12, 6) NOT NULL DEFAULT 0,
        error_message text,
        retry_count integer NOT NULL DEFAULT 0,
        started_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz,
        UNIQUE (run_id, step, item_key)
    )""")
    op.execute(f"""
    CREATE TABLE artifacts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        {TENANT_ID},
        run_id uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step text NOT NULL,
        file_type text NOT NULL,
        file_path text NOT NULL,
        digest text,
        metadata jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (run_id, file_path)
    )""")
    op.execute(f"""
    CREATE TABLE prompts (
        id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        {TENANT_ID},
        step text NOT NULL,
        version integer NOT NULL CHECK (version > 0),
        content text NOT NULL,
        variables jsonb NOT NULL DEFAULT '[]'::jsonb,
        is_active boolean NOT NULL DEFAULT false,
        created_by text,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, step, version)
    )""")
    op.execute("CREATE UNIQUE INDEX prompts_one_active ON prompts (tenant_id, step) WHERE is_active")
    op.execute(f"""
    CREATE TABLE system_settings (
        {TENANT_ID} PRIMARY KEY,
        base_url text,
        smtp_settings jsonb,
        ai_settings jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        shortlink_domain text,
        send_window jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(f"""
    CREATE TABLE idempotency_keys (
        {TENANT_ID},
        principal text NOT NULL,
        key text NOT NULL,
        method text NOT NULL,
        path text NOT NULL,
        request_hash text NOT NULL,
        status_code integer,
        response_body text,
        content_type text,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, principal, key)
    )""")
    for table in TABLES:
        tenant_table(table)


def downgrade() -> None:
    drop_tables(*reversed(TABLES))
