"""Tenant DB, community branch (seed 002, developer relationship management): organizations, developers, their
accounts and identifiers, merges and merge suggestions, campaigns, budgets, resources, activities and their
attribution, plugins with their runs and raw events, activity import jobs, shortlinks, stats and the funnel.

Seed 002's keys are kept (``developer_id``, ``account_id``...). Where the seed is silent or unsafe for a pooled
database, the decisions are in shared/funnel/community/README.md ("Schema"):
- every reference carries the tenant: ``UNIQUE (tenant_id, <key>)`` on the referenced table and
  ``FOREIGN KEY (tenant_id, col)``; ``ON DELETE SET NULL (col)`` never nulls the tenant;
- the seed's global ``UNIQUE (dedup_key)`` is per tenant (a global one lets a tenant probe a neighbour's keys);
- the seed's ``import_jobs`` is ``activity_import_jobs`` here: outreach's contact ``import_jobs`` has other
  columns and another life cycle, and areas do not share tables;
- ``developer_merge_suggestions`` (not in the seed) holds suggested merges with confidence and evidence, and the
  "not the same person" decisions; a merged developer is kept (``merged_into``) so that unmerge restores it.

Revision ID: t0001_community
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, app_role, drop_tables, tenant_table

revision = "t0001_community"
down_revision = None
branch_labels = ("community",)
depends_on = "t0002_platform"  # users' (tenant_id, id) key

TABLES = ("activity_funnel_map", "campaign_stats", "developer_stats", "shortlinks", "activity_import_jobs",
          "plugin_events_raw", "plugin_runs", "plugins", "activity_campaigns", "activities", "resources", "budgets",
          "campaigns", "developer_merge_suggestions", "developer_merge_logs", "developer_identifiers", "accounts",
          "developers", "organizations")
GLOBAL_TABLES = ("activity_funnel_defaults", "funnel_stages")

FUNNEL_STAGES = (("awareness", 1, "Awareness"), ("engagement", 2, "Engagement"), ("adoption", 3, "Adoption"),
                 ("advocacy", 4, "Advocacy"))
# What every tenant's activity_funnel_map starts with (funnel.community.store_funnel copies it per tenant).
DEFAULT_FUNNEL_MAP = {
    "awareness": ("click", "view", "visit", "scan", "open", "impression", "watch"),
    "engagement": ("star", "fork", "comment", "issue", "discussion", "attend", "register", "reaction", "post"),
    "adoption": ("signup", "download", "install", "api_call", "login"),
    "advocacy": ("pull_request", "release", "talk", "article", "answer", "referral"),
}


def _ref(table: str, column: str, referenced: str, key: str, on_delete: str) -> str:
    action = f"SET NULL ({column})" if on_delete == "SET NULL" else on_delete
    return (f"CONSTRAINT {table}_{column}_fkey FOREIGN KEY (tenant_id, {column}) "
            f"REFERENCES {referenced} (tenant_id, {key}) ON DELETE {action}")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS citext")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # developer search by name, e-mail and handle
    op.execute(f"""
    CREATE TABLE organizations (
        org_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
        domain_primary citext,
        attributes jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT organizations_tenant_name_unique UNIQUE (tenant_id, name),
        UNIQUE (tenant_id, org_id)
    )""")
    op.execute("CREATE INDEX idx_organizations_tenant_domain ON organizations (tenant_id, domain_primary)")
    op.execute(f"""
    CREATE TABLE developers (
        developer_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        display_name text,
        primary_email citext,
        org_id uuid,
        consent_analytics boolean NOT NULL DEFAULT true,
        tags text[] NOT NULL DEFAULT '{{}}',
        merged_into uuid,
        erased_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT developers_tenant_email_unique UNIQUE (tenant_id, primary_email),
        UNIQUE (tenant_id, developer_id),
        {_ref("developers", "org_id", "organizations", "org_id", "SET NULL")},
        {_ref("developers", "merged_into", "developers", "developer_id", "SET NULL")},
        CHECK (merged_into IS DISTINCT FROM developer_id)
    )""")
    op.execute("CREATE INDEX idx_developers_tenant_org ON developers (tenant_id, org_id)")
    op.execute("CREATE INDEX idx_developers_live ON developers (tenant_id, created_at DESC, developer_id DESC) "
               "WHERE merged_into IS NULL")
    op.execute("CREATE INDEX idx_developers_name_trgm ON developers USING GIN (display_name gin_trgm_ops)")
    op.execute("CREATE INDEX idx_developers_tags ON developers USING GIN (tags)")
    op.execute(f"""
    CREATE TABLE accounts (
        account_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        developer_id uuid,
        provider text NOT NULL CHECK (provider ~ '^[a-z0-9][a-z0-9_.-]{{0,49}}$'),
        external_user_id text NOT NULL CHECK (length(external_user_id) BETWEEN 1 AND 300),
        handle text,
        email citext,
        display_name text,
        profile_url text,
        avatar_url text,
        first_seen timestamptz,
        last_seen timestamptz,
        verified_at timestamptz,
        is_primary boolean NOT NULL DEFAULT false,
        confidence numeric NOT NULL DEFAULT 0.8 CHECK (confidence BETWEEN 0 AND 1),
        attributes jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        match_keys text[] NOT NULL DEFAULT '{{}}',
        dedup_key text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT accounts_tenant_provider_user_unique UNIQUE (tenant_id, provider, external_user_id),
        CONSTRAINT accounts_tenant_dedup_key_unique UNIQUE (tenant_id, dedup_key),
        UNIQUE (tenant_id, account_id),
        {_ref("accounts", "developer_id", "developers", "developer_id", "SET NULL")}
    )""")
    op.execute("CREATE INDEX idx_accounts_tenant_dev ON accounts (tenant_id, developer_id)")
    # candidates for merge suggestions: accounts sharing a normalised name, handle or e-mail key
    op.execute("CREATE INDEX idx_accounts_match_keys ON accounts USING GIN (match_keys)")
    op.execute("CREATE INDEX idx_accounts_handle_trgm ON accounts USING GIN (handle gin_trgm_ops)")
    op.execute(f"""
    CREATE TABLE developer_identifiers (
        identifier_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        developer_id uuid NOT NULL,
        account_id uuid,
        kind text NOT NULL CHECK (kind IN ('email', 'domain', 'phone', 'click_id', 'mlid', 'key_fp')),
        value_normalized text NOT NULL CHECK (length(value_normalized) BETWEEN 1 AND 320),
        confidence numeric NOT NULL DEFAULT 1.0 CHECK (confidence BETWEEN 0 AND 1),
        attributes jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        first_seen timestamptz,
        last_seen timestamptz,
        CONSTRAINT dev_identifiers_tenant_kind_value_unique UNIQUE (tenant_id, kind, value_normalized),
        {_ref("developer_identifiers", "developer_id", "developers", "developer_id", "CASCADE")},
        {_ref("developer_identifiers", "account_id", "accounts", "account_id", "SET NULL")}
    )""")
    op.execute("CREATE INDEX idx_dev_identifiers_tenant_dev ON developer_identifiers (tenant_id, developer_id)")
    op.execute(f"""
    CREATE TABLE developer_merge_logs (
        merge_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        action text NOT NULL DEFAULT 'merge' CHECK (action IN ('merge', 'unmerge')),
        into_developer_id uuid NOT NULL,
        from_developer_id uuid NOT NULL,
        reason text,
        evidence jsonb NOT NULL DEFAULT '[]'::jsonb,
        moved jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        undoes_merge_id uuid,
        undone_at timestamptz,
        merged_at timestamptz NOT NULL DEFAULT now(),
        merged_by uuid,
        UNIQUE (tenant_id, merge_id),
        {_ref("developer_merge_logs", "into_developer_id", "developers", "developer_id", "CASCADE")},
        {_ref("developer_merge_logs", "from_developer_id", "developers", "developer_id", "CASCADE")},
        {_ref("developer_merge_logs", "undoes_merge_id", "developer_merge_logs", "merge_id", "SET NULL")},
        {_ref("developer_merge_logs", "merged_by", "users", "id", "SET NULL")}
    )""")
    op.execute("CREATE INDEX idx_merge_logs_into ON developer_merge_logs "
               "(tenant_id, into_developer_id, merged_at DESC)")
    op.execute("CREATE INDEX idx_merge_logs_from ON developer_merge_logs "
               "(tenant_id, from_developer_id, merged_at DESC)")
    op.execute(f"""
    CREATE TABLE developer_merge_suggestions (
        suggestion_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        developer_id uuid NOT NULL,
        other_developer_id uuid NOT NULL,
        confidence numeric NOT NULL CHECK (confidence > 0 AND confidence < 1),
        evidence jsonb NOT NULL CHECK (jsonb_typeof(evidence) = 'array' AND jsonb_array_length(evidence) > 0),
        status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'rejected')),
        decided_by uuid,
        decided_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK (developer_id < other_developer_id),
        CONSTRAINT merge_suggestions_pair_unique UNIQUE (tenant_id, developer_id, other_developer_id),
        {_ref("developer_merge_suggestions", "developer_id", "developers", "developer_id", "CASCADE")},
        {_ref("developer_merge_suggestions", "other_developer_id", "developers", "developer_id", "CASCADE")},
        {_ref("developer_merge_suggestions", "decided_by", "users", "id", "SET NULL")}
    )""")
    op.execute("CREATE INDEX idx_merge_suggestions_open ON developer_merge_suggestions "
               "(tenant_id, confidence DESC, suggestion_id) WHERE status = 'open'")
    op.execute("CREATE INDEX idx_merge_suggestions_other ON developer_merge_suggestions "
               "(tenant_id, other_developer_id)")
    op.execute(f"""
    CREATE TABLE campaigns (
        campaign_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        channel text,
        start_date date,
        end_date date,
        budget_total numeric CHECK (budget_total >= 0),
        currency text NOT NULL DEFAULT 'JPY' CHECK (currency ~ '^[A-Z]{{3}}$'),
        attributes jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT campaigns_tenant_name_unique UNIQUE (tenant_id, name),
        UNIQUE (tenant_id, campaign_id),
        CHECK (end_date IS NULL OR start_date IS NULL OR end_date >= start_date)
    )""")
    op.execute(f"""
    CREATE TABLE budgets (
        budget_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        campaign_id uuid NOT NULL,
        category text NOT NULL CHECK (category IN ('labor', 'ad', 'production', 'venue', 'tool', 'other')),
        amount numeric NOT NULL,
        currency text NOT NULL DEFAULT 'JPY' CHECK (currency ~ '^[A-Z]{{3}}$'),
        spent_at date NOT NULL,
        source text CHECK (source IN ('form', 'api', 'csv', 'plugin')),
        memo text,
        meta jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        {_ref("budgets", "campaign_id", "campaigns", "campaign_id", "CASCADE")}
    )""")
    op.execute("CREATE INDEX idx_budgets_tenant_campaign ON budgets (tenant_id, campaign_id)")
    op.execute(f"""
    CREATE TABLE resources (
        resource_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        category text NOT NULL,
        group_key text,
        title text,
        url text,
        external_id text,
        campaign_id uuid,
        attributes jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, resource_id),
        {_ref("resources", "campaign_id", "campaigns", "campaign_id", "SET NULL")}
    )""")
    op.execute("CREATE INDEX idx_resources_tenant_cat ON resources (tenant_id, category)")
    op.execute("CREATE INDEX idx_resources_tenant_campaign ON resources (tenant_id, campaign_id)")
    op.execute("CREATE UNIQUE INDEX idx_resources_external ON resources (tenant_id, category, external_id) "
               "WHERE external_id IS NOT NULL")
    op.execute(f"""
    CREATE TABLE activities (
        activity_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        developer_id uuid,
        account_id uuid,
        anon_id text,
        resource_id uuid,
        action text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
        occurred_at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        source text NOT NULL CHECK (length(source) BETWEEN 1 AND 100),
        source_ref text,
        category text,
        group_key text,
        metadata jsonb,
        confidence numeric NOT NULL DEFAULT 1.0 CHECK (confidence BETWEEN 0 AND 1),
        dedup_key text,
        ingested_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT activities_tenant_dedup_key_unique UNIQUE (tenant_id, dedup_key),
        UNIQUE (tenant_id, activity_id),
        {_ref("activities", "developer_id", "developers", "developer_id", "SET NULL")},
        {_ref("activities", "account_id", "accounts", "account_id", "SET NULL")},
        {_ref("activities", "resource_id", "resources", "resource_id", "SET NULL")}
    )""")
    op.execute("CREATE INDEX idx_activities_tenant_time ON activities (tenant_id, occurred_at DESC)")
    op.execute("CREATE INDEX idx_activities_tenant_dev ON activities (tenant_id, developer_id, occurred_at DESC)")
    op.execute("CREATE INDEX idx_activities_tenant_res ON activities (tenant_id, resource_id, occurred_at DESC)")
    op.execute("CREATE INDEX idx_activities_tenant_action ON activities (tenant_id, action, occurred_at DESC)")
    op.execute("CREATE INDEX idx_activities_tenant_account ON activities (tenant_id, account_id)")
    op.execute("CREATE INDEX idx_activities_metadata_gin ON activities USING GIN (metadata)")
    op.execute(f"""
    CREATE TABLE activity_campaigns (
        activity_campaign_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        activity_id uuid NOT NULL,
        campaign_id uuid NOT NULL,
        weight numeric NOT NULL DEFAULT 1.0 CHECK (weight BETWEEN 0 AND 1),
        CONSTRAINT activity_campaigns_tenant_activity_campaign_unique UNIQUE (tenant_id, activity_id, campaign_id),
        {_ref("activity_campaigns", "activity_id", "activities", "activity_id", "CASCADE")},
        {_ref("activity_campaigns", "campaign_id", "campaigns", "campaign_id", "CASCADE")}
    )""")
    op.execute("CREATE INDEX idx_activity_campaigns_campaign ON activity_campaigns (tenant_id, campaign_id)")
    op.execute(f"""
    CREATE TABLE plugins (
        plugin_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        key text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9_-]{{0,62}}$'),
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        kind text NOT NULL DEFAULT 'webhook' CHECK (kind IN ('github', 'webhook')),
        enabled boolean NOT NULL DEFAULT true,
        config jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        secrets_encrypted text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT plugins_tenant_key_unique UNIQUE (tenant_id, key),
        UNIQUE (tenant_id, plugin_id)
    )""")
    op.execute(f"""
    CREATE TABLE plugin_runs (
        run_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        plugin_id uuid NOT NULL,
        trigger text NOT NULL CHECK (trigger IN ('cron', 'manual', 'webhook')),
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failed', 'partial')),
        result jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        UNIQUE (tenant_id, run_id),
        {_ref("plugin_runs", "plugin_id", "plugins", "plugin_id", "CASCADE")}
    )""")
    op.execute("CREATE INDEX idx_plugin_runs_tenant_plugin_time ON plugin_runs (tenant_id, plugin_id, started_at DESC)")
    op.execute(f"""
    CREATE TABLE plugin_events_raw (
        raw_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        plugin_id uuid NOT NULL,
        run_id uuid,
        event_type text,
        payload jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        dedup_key text,
        CONSTRAINT plugin_events_raw_tenant_dedup_key_unique UNIQUE (tenant_id, dedup_key),
        {_ref("plugin_events_raw", "plugin_id", "plugins", "plugin_id", "CASCADE")},
        {_ref("plugin_events_raw", "run_id", "plugin_runs", "run_id", "SET NULL")}
    )""")
    op.execute("CREATE INDEX idx_plugin_events_raw_plugin ON plugin_events_raw "
               "(tenant_id, plugin_id, received_at DESC)")
    op.execute(f"""
    CREATE TABLE activity_import_jobs (
        job_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        source text NOT NULL DEFAULT 'csv' CHECK (source IN ('csv', 'api', 'manual')),
        status text NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'running', 'completed', 'partial', 'failed')),
        file_path text,
        encoding text,
        metrics jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        created_by uuid,
        {_ref("activity_import_jobs", "created_by", "users", "id", "SET NULL")}
    )""")
    op.execute("CREATE INDEX idx_activity_import_jobs_created ON activity_import_jobs "
               "(tenant_id, created_at DESC, job_id)")
    op.execute(f"""
    CREATE TABLE shortlinks (
        shortlink_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        key text NOT NULL CHECK (key ~ '^[A-Za-z0-9_-]{{3,64}}$'),
        target_url text NOT NULL,
        campaign_id uuid,
        resource_id uuid,
        attributes jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT shortlinks_tenant_key_unique UNIQUE (tenant_id, key),
        UNIQUE (tenant_id, shortlink_id),
        {_ref("shortlinks", "campaign_id", "campaigns", "campaign_id", "SET NULL")},
        {_ref("shortlinks", "resource_id", "resources", "resource_id", "SET NULL")}
    )""")
    op.execute(f"""
    CREATE TABLE developer_stats (
        developer_id uuid PRIMARY KEY,
        {TENANT_ID},
        last_action_at timestamptz,
        total_actions bigint NOT NULL DEFAULT 0,
        clicks bigint NOT NULL DEFAULT 0,
        attends bigint NOT NULL DEFAULT 0,
        posts bigint NOT NULL DEFAULT 0,
        stars bigint NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now(),
        {_ref("developer_stats", "developer_id", "developers", "developer_id", "CASCADE")}
    )""")
    op.execute("CREATE INDEX idx_dev_stats_tenant ON developer_stats (tenant_id)")
    op.execute(f"""
    CREATE TABLE campaign_stats (
        campaign_id uuid PRIMARY KEY,
        {TENANT_ID},
        actions_total bigint NOT NULL DEFAULT 0,
        conversions bigint NOT NULL DEFAULT 0,
        cost_total numeric NOT NULL DEFAULT 0,
        roi_per_cost numeric,
        updated_at timestamptz NOT NULL DEFAULT now(),
        {_ref("campaign_stats", "campaign_id", "campaigns", "campaign_id", "CASCADE")}
    )""")
    # The stage dictionary is the product's, the same for every tenant (seed 002: global): no tenant_id, read-only
    # to the application.
    op.execute("""
    CREATE TABLE funnel_stages (
        stage_key text PRIMARY KEY,
        order_no integer NOT NULL UNIQUE,
        title text NOT NULL
    )""")
    op.execute("""
    CREATE TABLE activity_funnel_defaults (
        action text PRIMARY KEY,
        stage_key text NOT NULL REFERENCES funnel_stages (stage_key)
    )""")
    for key, order_no, title in FUNNEL_STAGES:
        op.execute(f"INSERT INTO funnel_stages (stage_key, order_no, title) VALUES ('{key}', {order_no}, '{title}')")
    for stage, actions in DEFAULT_FUNNEL_MAP.items():
        for action in actions:
            op.execute(f"INSERT INTO activity_funnel_defaults (action, stage_key) VALUES ('{action}', '{stage}')")
    op.execute(f"""
    CREATE TABLE activity_funnel_map (
        {TENANT_ID},
        action text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
        stage_key text NOT NULL REFERENCES funnel_stages (stage_key),
        PRIMARY KEY (tenant_id, action)
    )""")
    for table in TABLES:
        tenant_table(table)
    for table in GLOBAL_TABLES:
        op.execute(f"GRANT SELECT ON {table} TO {app_role()}")


def downgrade() -> None:
    drop_tables(*TABLES, *GLOBAL_TABLES)
