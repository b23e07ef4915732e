"""Tenant DB, community branch: each developer's first touch and first adoption in the stats rollup.

- ``developer_stats`` gets ``first_touch_at``, ``first_touch_source``, ``first_touch_from_org`` and
  ``first_touch_activity_id`` (the earliest of the developer's own activities and of its organization's, those
  with ``org_id`` and no developer; ties by activity id, which is why the id is kept) and ``first_adopted_at`` (its
  earliest own activity whose action maps to the adoption stage). The first-touch funnel
  (``GET /v1/adoption/first-touch``) reads them instead of probing every developer's activities on each request.
  A developer without activities of its own but whose organization has some now has a row (zero counts).
- ``community_stats_changes`` gets:
  - ``action_firsts``: per developer and statement, the earliest ``occurred_at`` of each action inserted. Not the
    adoption time itself: which actions are adoption is the tenant's funnel map, read by the rollup (as of its
    snapshot), so an insert that raced a map change is still judged by the map the rollup sees;
  - ``org_id``: an organization whose activities (without a developer) were inserted, deleted or changed: its
    developers are recounted;
  - ``remap``: the tenant's ``activity_funnel_map`` changed: every developer's first adoption is recounted.
- Triggers: the activities' three functions are replaced (``action_firsts``, the organizations' rows, and an edit
  of ``source`` now recounts the developer); new ones on ``developers`` (created in an organization, or moved to
  another one: recounted) and on ``activity_funnel_map`` (``remap``).
- ``community_stats_rollups.full_due``: true for the tenants rolled up before this revision (their rows lack the
  new columns), so their next rollup is a full recount; false for every later row.

Revision ID: t0009_community
"""
from alembic import op

revision = "t0009_community"
down_revision = "t0008_community"
branch_labels = None
depends_on = None

CHANGES = "community_stats_changes"
LINKED = ("(r.resource_id IS NOT NULL OR r.metadata->>'utm_campaign' IS NOT NULL "
          "OR r.metadata->>'shortlink_id' IS NOT NULL)")
TOUCH_KEY = "r.tenant_id, r.resource_id, r.metadata->>'utm_campaign', r.metadata->>'shortlink_id'"
# The touch-link part of the activities' update function, as t0006_community wrote it.
UPDATED_TOUCHES = f"""
    INSERT INTO {CHANGES} (tenant_id, resource_id, utm_campaign, shortlink_id, touches)
        SELECT {TOUCH_KEY}, sum(r.sign) FROM (
            SELECT o.*, -1 AS sign FROM previous o JOIN updated n USING (activity_id)
            WHERE (o.resource_id, o.metadata->>'utm_campaign', o.metadata->>'shortlink_id')
                  IS DISTINCT FROM (n.resource_id, n.metadata->>'utm_campaign', n.metadata->>'shortlink_id')
            UNION ALL
            SELECT n.*, 1 AS sign FROM previous o JOIN updated n USING (activity_id)
            WHERE (o.resource_id, o.metadata->>'utm_campaign', o.metadata->>'shortlink_id')
                  IS DISTINCT FROM (n.resource_id, n.metadata->>'utm_campaign', n.metadata->>'shortlink_id')
        ) r WHERE {LINKED} GROUP BY 1, 2, 3, 4 HAVING sum(r.sign) <> 0;"""
# An activity of an organization rather than of a person (t0007_community).
ORG_ROWS = f"""
    INSERT INTO {CHANGES} (tenant_id, org_id)
        SELECT DISTINCT r.tenant_id, r.org_id FROM changed_rows r
        WHERE r.developer_id IS NULL AND r.org_id IS NOT NULL;"""

FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION community_stats_activities_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- new activities only add: their counts per developer, and the earliest time of each action (the rollup
    -- lowers the first adoption with those of the adoption stage)
    INSERT INTO {CHANGES} (tenant_id, developer_id, actions, clicks, attends, posts, stars, last_action_at,
                           action_firsts)
        SELECT g.tenant_id, g.developer_id, sum(g.n), coalesce(sum(g.n) FILTER (WHERE g.action = 'click'), 0),
               coalesce(sum(g.n) FILTER (WHERE g.action = 'attend'), 0),
               coalesce(sum(g.n) FILTER (WHERE g.action = 'post'), 0),
               coalesce(sum(g.n) FILTER (WHERE g.action = 'star'), 0), max(g.last_at),
               jsonb_object_agg(g.action, g.first_at)
        FROM (SELECT r.tenant_id, r.developer_id, r.action, count(*) AS n, max(r.occurred_at) AS last_at,
                     min(r.occurred_at) AS first_at
              FROM changed_rows r WHERE r.developer_id IS NOT NULL GROUP BY 1, 2, 3) g
        GROUP BY 1, 2;
    {ORG_ROWS}
    INSERT INTO {CHANGES} (tenant_id, resource_id, utm_campaign, shortlink_id, touches)
        SELECT {TOUCH_KEY}, count(*) FROM changed_rows r WHERE {LINKED} GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION community_stats_activities_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- a deleted activity may have been the latest or the first: the developer is recounted
    INSERT INTO {CHANGES} (tenant_id, developer_id, recount)
        SELECT DISTINCT r.tenant_id, r.developer_id, true FROM changed_rows r WHERE r.developer_id IS NOT NULL;
    {ORG_ROWS}
    INSERT INTO {CHANGES} (tenant_id, resource_id, utm_campaign, shortlink_id, touches)
        SELECT {TOUCH_KEY}, -count(*) FROM changed_rows r WHERE {LINKED} GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION community_stats_activities_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, developer_id, recount)
        SELECT DISTINCT o.tenant_id, d.developer_id, true
        FROM previous o JOIN updated n USING (activity_id)
        CROSS JOIN LATERAL (VALUES (o.developer_id), (n.developer_id)) AS d(developer_id)
        WHERE d.developer_id IS NOT NULL
          AND (o.developer_id, o.action, o.occurred_at, o.source)
              IS DISTINCT FROM (n.developer_id, n.action, n.occurred_at, n.source);
    -- an organization's activity changed time or source, moved to another organization or to a developer
    INSERT INTO {CHANGES} (tenant_id, org_id)
        SELECT DISTINCT o.tenant_id, x.org_id
        FROM previous o JOIN updated n USING (activity_id)
        CROSS JOIN LATERAL (VALUES (o.org_id, o.developer_id), (n.org_id, n.developer_id)) AS x(org_id, developer_id)
        WHERE x.org_id IS NOT NULL AND x.developer_id IS NULL
          AND (o.developer_id, o.org_id, o.occurred_at, o.source)
              IS DISTINCT FROM (n.developer_id, n.org_id, n.occurred_at, n.source);
    {UPDATED_TOUCHES}
    RETURN NULL;
END $$;
-- A developer created in an organization, or moved to another one: its first touch may be the organization's.
CREATE FUNCTION community_stats_developers_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, developer_id, recount)
        SELECT r.tenant_id, r.developer_id, true FROM changed_rows r WHERE r.org_id IS NOT NULL;
    RETURN NULL;
END $$;
CREATE FUNCTION community_stats_developers_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, developer_id, recount)
        SELECT n.tenant_id, n.developer_id, true FROM previous o JOIN updated n USING (developer_id)
        WHERE o.org_id IS DISTINCT FROM n.org_id;
    RETURN NULL;
END $$;
-- The tenant's funnel map changed: which actions are adoption changed.
CREATE FUNCTION community_stats_funnel_map_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, remap) SELECT DISTINCT r.tenant_id, true FROM changed_rows r;
    RETURN NULL;
END $$;
CREATE FUNCTION community_stats_funnel_map_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, remap)
        SELECT DISTINCT n.tenant_id, true FROM previous o JOIN updated n USING (tenant_id, action)
        WHERE o.stage_key IS DISTINCT FROM n.stage_key;
    RETURN NULL;
END $$;
"""

# The activities' functions as t0006_community wrote them (the downgrade puts them back).
T0006_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION community_stats_activities_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, developer_id, actions, clicks, attends, posts, stars, last_action_at)
        SELECT r.tenant_id, r.developer_id, count(*), count(*) FILTER (WHERE r.action = 'click'),
               count(*) FILTER (WHERE r.action = 'attend'), count(*) FILTER (WHERE r.action = 'post'),
               count(*) FILTER (WHERE r.action = 'star'), max(r.occurred_at)
        FROM changed_rows r WHERE r.developer_id IS NOT NULL GROUP BY 1, 2;
    INSERT INTO {CHANGES} (tenant_id, resource_id, utm_campaign, shortlink_id, touches)
        SELECT {TOUCH_KEY}, count(*) FROM changed_rows r WHERE {LINKED} GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION community_stats_activities_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, developer_id, recount)
        SELECT DISTINCT r.tenant_id, r.developer_id, true FROM changed_rows r WHERE r.developer_id IS NOT NULL;
    INSERT INTO {CHANGES} (tenant_id, resource_id, utm_campaign, shortlink_id, touches)
        SELECT {TOUCH_KEY}, -count(*) FROM changed_rows r WHERE {LINKED} GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION community_stats_activities_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {CHANGES} (tenant_id, developer_id, recount)
        SELECT DISTINCT o.tenant_id, d.developer_id, true
        FROM previous o JOIN updated n USING (activity_id)
        CROSS JOIN LATERAL (VALUES (o.developer_id), (n.developer_id)) AS d(developer_id)
        WHERE d.developer_id IS NOT NULL
          AND (o.developer_id, o.action, o.occurred_at) IS DISTINCT FROM (n.developer_id, n.action, n.occurred_at);
    {UPDATED_TOUCHES}
    RETURN NULL;
END $$;
"""

# (trigger, table, event, function)
TRIGGERS = (
    ("developers_stats_inserted", "developers", "INSERT", "community_stats_developers_inserted"),
    ("developers_stats_updated", "developers", "UPDATE", "community_stats_developers_updated"),
    ("activity_funnel_map_stats_inserted", "activity_funnel_map", "INSERT", "community_stats_funnel_map_changed"),
    ("activity_funnel_map_stats_deleted", "activity_funnel_map", "DELETE", "community_stats_funnel_map_changed"),
    ("activity_funnel_map_stats_updated", "activity_funnel_map", "UPDATE", "community_stats_funnel_map_updated"),
)
FUNCTION_NAMES = ("community_stats_developers_inserted", "community_stats_developers_updated",
                  "community_stats_funnel_map_changed", "community_stats_funnel_map_updated")


def _referencing(event: str) -> str:
    if event == "INSERT":
        return "REFERENCING NEW TABLE AS changed_rows"
    if event == "DELETE":
        return "REFERENCING OLD TABLE AS changed_rows"
    return "REFERENCING OLD TABLE AS previous NEW TABLE AS updated"


def upgrade() -> None:
    op.execute("""
    ALTER TABLE developer_stats
        ADD COLUMN first_touch_at timestamptz,
        ADD COLUMN first_touch_source text,
        ADD COLUMN first_touch_from_org boolean,
        ADD COLUMN first_touch_activity_id uuid,
        ADD COLUMN first_adopted_at timestamptz""")
    op.execute(f"""
    ALTER TABLE {CHANGES}
        ADD COLUMN action_firsts jsonb,
        ADD COLUMN org_id uuid,
        ADD COLUMN remap boolean NOT NULL DEFAULT false""")
    # existing rows (tenants rolled up before this revision) take true; rows written later false
    op.execute("ALTER TABLE community_stats_rollups ADD COLUMN full_due boolean NOT NULL DEFAULT true")
    op.execute("ALTER TABLE community_stats_rollups ALTER COLUMN full_due SET DEFAULT false")
    op.execute(FUNCTIONS)
    for trigger, table, event, function in TRIGGERS:
        op.execute(f"CREATE TRIGGER {trigger} AFTER {event} ON {table} {_referencing(event)} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")


def downgrade() -> None:
    for trigger, table, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for function in FUNCTION_NAMES:
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute(T0006_FUNCTIONS)
    op.execute("ALTER TABLE community_stats_rollups DROP COLUMN full_due")
    op.execute(f"ALTER TABLE {CHANGES} DROP COLUMN action_firsts, DROP COLUMN org_id, DROP COLUMN remap")
    op.execute("ALTER TABLE developer_stats DROP COLUMN first_touch_at, DROP COLUMN first_touch_source, "
               "DROP COLUMN first_touch_from_org, DROP COLUMN first_touch_activity_id, DROP COLUMN first_adopted_at")
