"""Tenant DB, community branch: what the incremental rollup of ``developer_stats`` / ``campaign_stats`` needs, and
saved developer segments.

- ``community_stats_changes``: the change log the rollup consumes. Statement-level triggers (one INSERT per
  statement, whatever wrote the rows: the API, a CSV import, a plugin, a merge, an unmerge, an erasure, an
  attribution recomputation, a cascade) append:
  - per developer, the counts of the activities inserted (``actions``, ``clicks``... ``last_action_at``), which
    the rollup adds to the stored figures; ``recount`` for the developers whose activities were deleted or changed
    developer, action or time (a merge moves activities between two developers: both) or whose stats row someone
    else deleted: those are counted again from their activities;
  - the campaigns whose attribution rows or budget entries changed, or that were created or edited ->
    ``campaign_id``;
  - signed counts of activities per campaign link (``resource_id``, ``metadata.utm_campaign``,
    ``metadata.shortlink_id``) -> ``touches``: the rollup resolves them to campaigns and adds them up;
  - ``relink``: what links activities to campaigns changed (a campaign created or renamed or given another
    utm_campaign, a resource or shortlink moved to another campaign or deleted): the campaigns' touch counts are
    counted again from the activities.
  The rollup deletes the rows it consumed in the same statement that reads the activities (one snapshot), so a
  change is counted once whatever order transactions commit in: a sequence number alone cannot be a watermark,
  since a transaction holding number 100 may commit after one holding 101 was read. ``change_id`` is kept as the
  high-water mark each rollup reports.
- ``community_stats_rollups``: one row per tenant, the last rollup (when, how many changes, the high-water mark,
  whether it was a full recount). No row: the next rollup is a full recount (also for tenants that had
  activities before this revision).
- ``campaign_stats`` gets ``currency`` (its cost is in the campaign's currency) and ``conversions_weighted`` (the
  sum of attribution weights; ``conversions`` stays the seed's count of credited conversions).
- ``developer_segments``: saved segment definitions (``kind`` + ``params``), names unique per tenant.

Why triggers and not the writers: every path that changes activities (store_activities, imports, identity,
developers' erasure, attribution, cascades) marks its changes without knowing the stats exist.

Revision ID: t0006_community
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0006_community"
down_revision = "t0005_community"
branch_labels = None
depends_on = None

TABLES = ("developer_segments", "community_stats_rollups", "community_stats_changes")

# An activity links to campaigns through one of these (the attribution's touches: funnel.community.campaigns).
LINKED = ("(r.resource_id IS NOT NULL OR r.metadata->>'utm_campaign' IS NOT NULL "
          "OR r.metadata->>'shortlink_id' IS NOT NULL)")
TOUCH_KEY = "r.tenant_id, r.resource_id, r.metadata->>'utm_campaign', r.metadata->>'shortlink_id'"
CHANGES = "community_stats_changes"

FUNCTIONS = f"""
CREATE FUNCTION community_stats_activities_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- new activities only add: their counts per developer, which the rollup adds to the stored figures
    INSERT INTO {CHANGES} (tenant_id, developer_id, actions, clicks, attends, posts, stars, last_action_at)
        SELECT r.tenant_id, r.developer_id, count(*), count(*) FILTER (WHERE r.action = 'click'),
               count(*) FILTER (WHERE r.action = 'attend'), count(*) FILTER (WHERE r.action = 'post'),
               count(*) FILTER (WHERE r.action = 'star'), max(r.occurred_at)
        FROM changed_rows r WHERE r.developer_id IS NOT NULL GROUP BY 1, 2;
    INSERT INTO {CHANGES} (tenant_id, resource_id, utm_campaign, shortlink_id, touches)
        SELECT {TOUCH_KEY}, count(*) FROM changed_rows r WHERE {LINKED} GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE FUNCTION community_stats_activities_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- a deleted activity may have been the latest: the developer is recounted
    INSERT INTO {CHANGES} (tenant_id, developer_id, recount)
        SELECT DISTINCT r.tenant_id, r.developer_id, true FROM changed_rows r WHERE r.developer_id IS NOT NULL;
    INSERT INTO {CHANGES} (tenant_id, resource_id, utm_campaign, shortlink_id, touches)
        SELECT {TOUCH_KEY}, -count(*) FROM changed_rows r WHERE {LINKED} GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE FUNCTION community_stats_activities_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, developer_id, recount)
        SELECT DISTINCT o.tenant_id, d.developer_id, true
        FROM previous o JOIN updated n USING (activity_id)
        CROSS JOIN LATERAL (VALUES (o.developer_id), (n.developer_id)) AS d(developer_id)
        WHERE d.developer_id IS NOT NULL
          AND (o.developer_id, o.action, o.occurred_at) IS DISTINCT FROM (n.developer_id, n.action, n.occurred_at);
    INSERT INTO {CHANGES} (tenant_id, resource_id, utm_campaign, shortlink_id, touches)
        SELECT {TOUCH_KEY}, sum(r.sign) FROM (
            SELECT o.*, -1 AS sign FROM previous o JOIN updated n USING (activity_id)
            WHERE (o.resource_id, o.metadata->>'utm_campaign', o.metadata->>'shortlink_id')
                  IS DISTINCT FROM (n.resource_id, n.metadata->>'utm_campaign', n.metadata->>'shortlink_id')
            UNION ALL
            SELECT n.*, 1 AS sign FROM previous o JOIN updated n USING (activity_id)
            WHERE (o.resource_id, o.metadata->>'utm_campaign', o.metadata->>'shortlink_id')
                  IS DISTINCT FROM (n.resource_id, n.metadata->>'utm_campaign', n.metadata->>'shortlink_id')
        ) r WHERE {LINKED} GROUP BY 1, 2, 3, 4 HAVING sum(r.sign) <> 0;
    RETURN NULL;
END $$;
-- developer_stats rows deleted by anyone but the rollup (identity deletes a merged pair's): recounted.
CREATE FUNCTION community_stats_developer_rows_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('funnel.stats_rollup', true) IS DISTINCT FROM 'on' THEN
        INSERT INTO {CHANGES} (tenant_id, developer_id, recount)
            SELECT DISTINCT r.tenant_id, r.developer_id, true FROM changed_rows r;
    END IF;
    RETURN NULL;
END $$;
-- activity_campaigns and budgets: the campaigns of the rows written (attribution recomputations, cascades).
CREATE FUNCTION community_stats_campaign_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, campaign_id)
        SELECT DISTINCT r.tenant_id, r.campaign_id FROM changed_rows r;
    RETURN NULL;
END $$;
CREATE FUNCTION community_stats_campaign_rows_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, campaign_id)
        SELECT DISTINCT r.tenant_id, r.campaign_id FROM (SELECT tenant_id, campaign_id FROM previous
                                                        UNION ALL SELECT tenant_id, campaign_id FROM updated) r;
    RETURN NULL;
END $$;
-- A new campaign: its row, and its name may already be the utm_campaign of activities.
CREATE FUNCTION community_stats_campaigns_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, campaign_id) SELECT r.tenant_id, r.campaign_id FROM changed_rows r;
    INSERT INTO {CHANGES} (tenant_id, relink) SELECT DISTINCT r.tenant_id, true FROM changed_rows r;
    RETURN NULL;
END $$;
CREATE FUNCTION community_stats_campaigns_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, campaign_id)
        SELECT n.tenant_id, n.campaign_id FROM previous o JOIN updated n USING (campaign_id)
        WHERE o.currency IS DISTINCT FROM n.currency;
    INSERT INTO {CHANGES} (tenant_id, relink)
        SELECT DISTINCT n.tenant_id, true FROM previous o JOIN updated n USING (campaign_id)
        WHERE (o.name, o.attributes->>'utm_campaign') IS DISTINCT FROM (n.name, n.attributes->>'utm_campaign');
    RETURN NULL;
END $$;
-- A resource or shortlink that links activities to a campaign moved or went.
CREATE FUNCTION community_stats_links_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, relink)
        SELECT DISTINCT r.tenant_id, true FROM changed_rows r WHERE r.campaign_id IS NOT NULL;
    RETURN NULL;
END $$;
CREATE FUNCTION community_stats_resources_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, relink)
        SELECT DISTINCT n.tenant_id, true FROM previous o JOIN updated n USING (resource_id)
        WHERE o.campaign_id IS DISTINCT FROM n.campaign_id;
    RETURN NULL;
END $$;
CREATE FUNCTION community_stats_shortlinks_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, relink)
        SELECT DISTINCT n.tenant_id, true FROM previous o JOIN updated n USING (shortlink_id)
        WHERE o.campaign_id IS DISTINCT FROM n.campaign_id;
    RETURN NULL;
END $$;
"""

# (trigger, table, event, function)
TRIGGERS = (
    ("activities_stats_inserted", "activities", "INSERT", "community_stats_activities_inserted"),
    ("activities_stats_deleted", "activities", "DELETE", "community_stats_activities_deleted"),
    ("activities_stats_updated", "activities", "UPDATE", "community_stats_activities_updated"),
    ("developer_stats_deleted", "developer_stats", "DELETE", "community_stats_developer_rows_deleted"),
    ("activity_campaigns_stats_inserted", "activity_campaigns", "INSERT", "community_stats_campaign_rows_changed"),
    ("activity_campaigns_stats_deleted", "activity_campaigns", "DELETE", "community_stats_campaign_rows_changed"),
    ("activity_campaigns_stats_updated", "activity_campaigns", "UPDATE", "community_stats_campaign_rows_updated"),
    ("budgets_stats_inserted", "budgets", "INSERT", "community_stats_campaign_rows_changed"),
    ("budgets_stats_deleted", "budgets", "DELETE", "community_stats_campaign_rows_changed"),
    ("budgets_stats_updated", "budgets", "UPDATE", "community_stats_campaign_rows_updated"),
    ("campaigns_stats_inserted", "campaigns", "INSERT", "community_stats_campaigns_inserted"),
    ("campaigns_stats_updated", "campaigns", "UPDATE", "community_stats_campaigns_updated"),
    ("resources_stats_deleted", "resources", "DELETE", "community_stats_links_changed"),
    ("resources_stats_updated", "resources", "UPDATE", "community_stats_resources_updated"),
    ("shortlinks_stats_inserted", "shortlinks", "INSERT", "community_stats_links_changed"),
    ("shortlinks_stats_deleted", "shortlinks", "DELETE", "community_stats_links_changed"),
    ("shortlinks_stats_updated", "shortlinks", "UPDATE", "community_stats_shortlinks_updated"),
)
FUNCTION_NAMES = ("community_stats_developer_rows_deleted", "community_stats_activities_inserted",
                  "community_stats_activities_deleted",
                  "community_stats_activities_updated", "community_stats_campaign_rows_changed",
                  "community_stats_campaign_rows_updated", "community_stats_campaigns_inserted",
                  "community_stats_campaigns_updated", "community_stats_links_changed",
                  "community_stats_resources_updated", "community_stats_shortlinks_updated")


def _referencing(event: str) -> str:
    if event == "INSERT":
        return "REFERENCING NEW TABLE AS changed_rows"
    if event == "DELETE":
        return "REFERENCING OLD TABLE AS changed_rows"
    return "REFERENCING OLD TABLE AS previous NEW TABLE AS updated"


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE community_stats_changes (
        change_id bigserial PRIMARY KEY,
        {TENANT_ID},
        developer_id uuid,
        campaign_id uuid,
        resource_id uuid,
        utm_campaign text,
        shortlink_id text,
        actions bigint NOT NULL DEFAULT 0,
        clicks bigint NOT NULL DEFAULT 0,
        attends bigint NOT NULL DEFAULT 0,
        posts bigint NOT NULL DEFAULT 0,
        stars bigint NOT NULL DEFAULT 0,
        last_action_at timestamptz,
        recount boolean NOT NULL DEFAULT false,
        touches bigint NOT NULL DEFAULT 0,
        relink boolean NOT NULL DEFAULT false,
        changed_at timestamptz NOT NULL DEFAULT now()
    )""")  # no references: a change outlives the row it is about (a deleted activity's developer must be recounted)
    op.execute("CREATE INDEX idx_community_stats_changes_tenant ON community_stats_changes (tenant_id, change_id)")
    op.execute(f"""
    CREATE TABLE community_stats_rollups (
        {TENANT_ID} PRIMARY KEY,
        rolled_up_at timestamptz NOT NULL DEFAULT now(),
        full_at timestamptz,
        high_water_change_id bigint,
        changes bigint NOT NULL DEFAULT 0,
        developers_written bigint NOT NULL DEFAULT 0,
        campaigns_written bigint NOT NULL DEFAULT 0,
        was_full boolean NOT NULL DEFAULT false,
        duration_ms integer NOT NULL DEFAULT 0
    )""")
    op.execute("""
    ALTER TABLE campaign_stats
        ADD COLUMN currency text NOT NULL DEFAULT 'JPY',
        ADD COLUMN conversions_weighted numeric NOT NULL DEFAULT 0""")
    # the active-then-silent segment reads developers by their last action
    op.execute("CREATE INDEX idx_dev_stats_last_action ON developer_stats "
               "(tenant_id, last_action_at DESC, developer_id DESC)")
    op.execute(f"""
    CREATE TABLE developer_segments (
        segment_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        description text CHECK (length(description) <= 2000),
        kind text NOT NULL CHECK (kind IN ('active_then_silent', 'most_engaged')),
        params jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        created_by uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT developer_segments_tenant_name_unique UNIQUE (tenant_id, name),
        UNIQUE (tenant_id, segment_id),
        CONSTRAINT developer_segments_created_by_fkey FOREIGN KEY (tenant_id, created_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by)
    )""")
    op.execute("CREATE INDEX idx_developer_segments_created ON developer_segments "
               "(tenant_id, created_at DESC, segment_id DESC)")
    op.execute(FUNCTIONS)
    for trigger, table, event, function in TRIGGERS:
        op.execute(f"CREATE TRIGGER {trigger} AFTER {event} ON {table} {_referencing(event)} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    for table in TABLES:
        tenant_table(table)
    # the product's two small dictionaries never reach autovacuum's analyze threshold (50 rows): without statistics
    # the planner takes the funnel map for ~900 rows, and the funnel's estimates for 30 times what it reads
    op.execute("ANALYZE funnel_stages")
    op.execute("ANALYZE activity_funnel_defaults")


def downgrade() -> None:
    for trigger, table, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for function in FUNCTION_NAMES:
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute("DROP INDEX IF EXISTS idx_dev_stats_last_action")
    op.execute("ALTER TABLE campaign_stats DROP COLUMN IF EXISTS currency, DROP COLUMN IF EXISTS conversions_weighted")
    drop_tables(*TABLES)
