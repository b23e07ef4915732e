"""Tenant DB, content branch (seed 003): sites, products, article_clusters, articles,
generated_images, schedules, schedule_jobs.

Revision ID: t0001_content
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0001_content"
down_revision = None
branch_labels = ("content",)
depends_on = "t0001_platform"

TABLES = ("sites", "products", "article_clusters", "articles", "generated_images", "schedules", "schedule_jobs")


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE sites (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        user_id uuid REFERENCES users(id) ON DELETE SET NULL,
        slug text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{{0,99}}$'),
        wp_admin_url text NOT NULL,
        wp_username text,
        wp_api_token text,
        status text NOT NULL DEFAULT 'provisioning' CHECK (status IN ('provisioning', 'active', 'suspended')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, slug)
    )""")
    op.execute(f"""
    CREATE TABLE products (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        user_id uuid REFERENCES users(id) ON DELETE SET NULL,
        site_id uuid REFERENCES sites(id) ON DELETE SET NULL,
        url text NOT NULL,
        name text,
        description text,
        analysis_result jsonb,
        image_style text NOT NULL DEFAULT 'illustration',
        color_theme text NOT NULL DEFAULT 'auto',
        image_size text NOT NULL DEFAULT '1200x630' CHECK (image_size ~ '^[0-9]{{2,4}}x[0-9]{{2,4}}$'),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(f"""
    CREATE TABLE article_clusters (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        product_id uuid NOT NULL REFERENCES products(id) ON DELETE CASCADE,
        run_id uuid REFERENCES runs(id) ON DELETE SET NULL,
        pillar_keyword text,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'generating', 'completed')),
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(f"""
    CREATE TABLE articles (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        cluster_id uuid NOT NULL REFERENCES article_clusters(id) ON DELETE CASCADE,
        position integer NOT NULL DEFAULT 0,
        keyword text,
        outline jsonb,
        title text,
        content text,
        meta_description varchar(160),
        article_type text NOT NULL DEFAULT 'article' CHECK (article_type IN ('article', 'faq', 'glossary')),
        status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
        wp_post_id integer,
        wp_status text,
        wp_link text,
        wp_media_id integer,
        published_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX articles_tenant_cluster ON articles (tenant_id, cluster_id, position)")
    op.execute(f"""
    CREATE TABLE generated_images (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        article_id uuid NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        prompt text,
        image_url text,
        storage_path text,
        generation_time_ms integer,
        cost_usd numeric(10, 4) NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(f"""
    CREATE TABLE schedules (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        user_id uuid REFERENCES users(id) ON DELETE SET NULL,
        site_id uuid NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
        product_id uuid NOT NULL REFERENCES products(id) ON DELETE CASCADE,
        cron_expression varchar(100) NOT NULL,
        timezone text NOT NULL DEFAULT 'Asia/Tokyo',
        articles_per_run integer NOT NULL DEFAULT 1 CHECK (articles_per_run BETWEEN 1 AND 20),
        publish_mode text NOT NULL DEFAULT 'draft' CHECK (publish_mode IN ('draft', 'publish')),
        is_active boolean NOT NULL DEFAULT true,
        next_run_at timestamptz,
        scheduler_name text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute(f"""
    CREATE TABLE schedule_jobs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        schedule_id uuid NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
        scheduled_for timestamptz NOT NULL,
        run_id uuid REFERENCES runs(id) ON DELETE SET NULL,
        status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed', 'failed')),
        started_at timestamptz,
        completed_at timestamptz,
        articles_generated integer,
        error_message text,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (schedule_id, scheduled_for)
    )""")
    for table in TABLES:
        tenant_table(table)


def downgrade() -> None:
    drop_tables(*reversed(TABLES))
