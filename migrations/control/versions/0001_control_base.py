"""Control DB: tenants, LLM registry, login directory, API-key prefixes, rate limits.

Revision ID: c0001
"""
from alembic import op

from funnel.platform.migration_helpers import app_role

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = app_role()
    op.execute("CREATE EXTENSION IF NOT EXISTS citext")
    op.execute("""
    CREATE TABLE tenants (
        id text PRIMARY KEY,
        name text NOT NULL,
        slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
        database_url text NOT NULL,
        isolation text NOT NULL DEFAULT 'silo' CHECK (isolation IN ('silo', 'pool')),
        plan text NOT NULL DEFAULT 'free',
        status text NOT NULL DEFAULT 'provisioning'
            CHECK (status IN ('provisioning', 'active', 'suspended', 'deleted')),
        is_active boolean NOT NULL DEFAULT true,
        stripe_customer_id text UNIQUE,
        stripe_subscription_id text UNIQUE,
        subscription_status text NOT NULL DEFAULT 'trial'
            CHECK (subscription_status IN ('trial', 'active', 'past_due', 'canceled', 'incomplete', 'unpaid')),
        current_period_end timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("""
    CREATE TABLE llm_providers (
        id text PRIMARY KEY,
        display_name text NOT NULL,
        api_base_url text,
        api_key_name text,
        is_offline boolean NOT NULL DEFAULT false,
        is_active boolean NOT NULL DEFAULT true
    )""")
    op.execute("""
    CREATE TABLE llm_models (
        id serial PRIMARY KEY,
        provider_id text NOT NULL REFERENCES llm_providers(id),
        model_name text NOT NULL,
        model_class text NOT NULL CHECK (model_class IN ('pro', 'standard')),
        input_cost_per_mtok numeric(12, 6) NOT NULL DEFAULT 0,
        output_cost_per_mtok numeric(12, 6) NOT NULL DEFAULT 0,
        is_active boolean NOT NULL DEFAULT true,
        UNIQUE (provider_id, model_name)
    )""")
    op.execute("""
    CREATE TABLE step_llm_defaults (
        step text PRIMARY KEY,
        provider_id text NOT NULL REFERENCES llm_providers(id),
        model_class text NOT NULL CHECK (model_class IN ('pro', 'standard'))
    )""")
    op.execute("""
    CREATE TABLE login_directory (
        email citext NOT NULL,
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        PRIMARY KEY (email, tenant_id)
    )""")
    op.execute("""
    CREATE TABLE api_key_prefixes (
        prefix text PRIMARY KEY,
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("""
    CREATE TABLE rate_limit_counters (
        key text NOT NULL,
        window_start timestamptz NOT NULL,
        count integer NOT NULL DEFAULT 0,
        PRIMARY KEY (key, window_start)
    )""")
    # Registry seed: providers reachable through the openai SDK (OpenAI-compatible endpoints),
    # plus the labelled offline provider. Model names live here, never in Python.
    op.execute("""
    INSERT INTO llm_providers (id, display_name, api_base_url, api_key_name, is_offline) VALUES
        ('openai', 'OpenAI', 'https://api.openai.com/v1', 'openai', false),
        ('gemini', 'Google Gemini', 'https://generativelanguage.googleapis.com/v1beta/openai/', 'gemini', false),
        ('claude', 'Anthropic Claude', 'https://api.anthropic.com/v1/', 'claude', false),
        ('offline', 'Offline (deterministic, no model)', NULL, NULL, true)
    """)
    op.execute("""
    INSERT INTO llm_models (provider_id, model_name, model_class, input_cost_per_mtok, output_cost_per_mtok) VALUES
        ('openai', 'gpt-5', 'pro', 1.25, 10.0),
        ('openai', 'gpt-5-mini', 'standard', 0.25, 2.0),
        ('gemini', 'gemini-2.5-pro', 'pro', 1.25, 10.0),
        ('gemini', 'gemini-2.5-flash', 'standard', 0.30, 2.5),
        ('claude', 'claude-sonnet-4-5', 'pro', 3.0, 15.0),
        ('claude', 'claude-haiku-4-5', 'standard', 1.0, 5.0),
        ('offline', 'offline-pro', 'pro', 0, 0),
        ('offline', 'offline-standard', 'standard', 0, 0)
    """)
    op.execute("""
    INSERT INTO step_llm_defaults (step, provider_id, model_class) VALUES
        ('analyze_product', 'openai', 'pro'),
        ('plan_cluster', 'openai', 'pro'),
        ('write_article', 'claude', 'pro'),
        ('generate_image', 'openai', 'standard'),
        ('personalize_message', 'openai', 'standard'),
        ('classify_form_field', 'gemini', 'standard')
    """)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")


def downgrade() -> None:
    for table in ("rate_limit_counters", "api_key_prefixes", "login_directory", "step_llm_defaults",
                  "llm_models", "llm_providers", "tenants"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
