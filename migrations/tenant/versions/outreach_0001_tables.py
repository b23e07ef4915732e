"""Tenant DB, outreach branch (seed 000): contacts, templates, tasks, task_targets, ai_runs,
browser_jobs, the suppression (do-not-contact) list and the sent history.

Revision ID: t0001_outreach
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0001_outreach"
down_revision = None
branch_labels = ("outreach",)
depends_on = "t0001_platform"

TABLES = ("sent_history", "suppressions", "browser_jobs", "ai_runs", "task_targets", "tasks", "templates",
          "contacts", "import_jobs")


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE contacts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        user_id uuid REFERENCES users(id) ON DELETE SET NULL,
        company_name text NOT NULL CHECK (length(company_name) BETWEEN 1 AND 300),
        default_url text,
        domain text,
        default_contact_person text,
        email citext,
        phone text,
        corporate_number text CHECK (corporate_number ~ '^[0-9]{{13}}$'),
        industry text,
        metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE UNIQUE INDEX contacts_one_per_domain ON contacts (tenant_id, domain) WHERE domain IS NOT NULL")
    op.execute("CREATE INDEX contacts_created ON contacts (tenant_id, created_at DESC, id DESC)")
    op.execute(f"""
    CREATE TABLE import_jobs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        user_id uuid REFERENCES users(id) ON DELETE SET NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'completed', 'failed')),
        total_rows integer NOT NULL DEFAULT 0,
        processed_rows integer NOT NULL DEFAULT 0,
        imported integer NOT NULL DEFAULT 0,
        rejected integer NOT NULL DEFAULT 0,
        source_path text,
        report jsonb NOT NULL DEFAULT '[]'::jsonb,
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz
    )""")
    op.execute(f"""
    CREATE TABLE templates (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        user_id uuid REFERENCES users(id) ON DELETE SET NULL,
        type text NOT NULL DEFAULT 'form' CHECK (type IN ('form', 'email')),
        title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
        body text NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        is_active boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(f"""
    CREATE TABLE tasks (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        user_id uuid REFERENCES users(id) ON DELETE SET NULL,
        name text NOT NULL,
        mode text NOT NULL DEFAULT 'auto' CHECK (mode IN ('auto', 'review')),
        status text NOT NULL DEFAULT 'draft'
            CHECK (status IN ('draft', 'running', 'paused', 'review', 'completed', 'cancelled', 'failed')),
        settings jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        run_id uuid REFERENCES runs(id) ON DELETE SET NULL,
        started_at timestamptz,
        finished_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX tasks_created ON tasks (tenant_id, created_at DESC, id DESC)")
    op.execute(f"""
    CREATE TABLE task_targets (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        task_id uuid NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        contact_id uuid REFERENCES contacts(id) ON DELETE SET NULL,
        target_url text NOT NULL,
        domain text NOT NULL,
        company_name text,
        subject text,
        message text,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'queued', 'running', 'review',
            'approved', 'rejected', 'submitted', 'captcha', 'refused', 'no_form', 'failed', 'skipped')),
        retry_count smallint NOT NULL DEFAULT 0,
        result_summary text,
        screenshots jsonb NOT NULL DEFAULT '[]'::jsonb,
        fields jsonb,
        last_attempt_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (task_id, domain)
    )""")
    op.execute("CREATE INDEX task_targets_task ON task_targets (task_id, status)")
    op.execute(f"""
    CREATE TABLE ai_runs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        task_target_id uuid NOT NULL REFERENCES task_targets(id) ON DELETE CASCADE,
        step text NOT NULL,
        model text,
        prompt_tokens integer NOT NULL DEFAULT 0,
        completion_tokens integer NOT NULL DEFAULT 0,
        cost_estimate numeric(12, 6) NOT NULL DEFAULT 0,
        response_json jsonb,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(f"""
    CREATE TABLE browser_jobs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        task_target_id uuid NOT NULL REFERENCES task_targets(id) ON DELETE CASCADE,
        user_id uuid REFERENCES users(id) ON DELETE SET NULL,
        state text NOT NULL DEFAULT 'running'
            CHECK (state IN ('running', 'submitting', 'submitted', 'done', 'failed', 'timed_out')),
        runner_id uuid NOT NULL DEFAULT gen_random_uuid(),
        debug_mode boolean NOT NULL DEFAULT false,
        error text,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now(),
        ended_at timestamptz
    )""")
    # At most one submission per target, ever: the second 'submitting' claim fails.
    op.execute("CREATE UNIQUE INDEX browser_jobs_one_submission ON browser_jobs (task_target_id) "
               "WHERE state IN ('submitting', 'submitted')")
    op.execute("CREATE INDEX browser_jobs_slots ON browser_jobs (tenant_id, user_id) "
               "WHERE state IN ('running', 'submitting')")
    op.execute(f"""
    CREATE TABLE suppressions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        kind text NOT NULL CHECK (kind IN ('domain', 'email', 'phone', 'company_name', 'corporate_number')),
        value text NOT NULL,
        reason text NOT NULL CHECK (reason IN ('unsubscribed', 'hard_bounce', 'complaint', 'manual', 'do_not_contact')),
        source text,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, kind, value)
    )""")
    op.execute(f"""
    CREATE TABLE sent_history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        {TENANT_ID},
        domain text NOT NULL,
        contact_id uuid REFERENCES contacts(id) ON DELETE SET NULL,
        task_id uuid REFERENCES tasks(id) ON DELETE SET NULL,
        channel text NOT NULL DEFAULT 'form',
        sent_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX sent_history_domain ON sent_history (tenant_id, domain, sent_at DESC)")
    for table in TABLES:
        tenant_table(table)


def downgrade() -> None:
    drop_tables(*TABLES)
