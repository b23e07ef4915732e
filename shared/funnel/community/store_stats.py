"""SQL of the community stats: the rollup of ``developer_stats`` / ``campaign_stats`` from the change log
(``community_stats_changes``, t0006_community), the funnel map, funnel counts, activity time series and saved
segments with their members.

The rollup is one statement (data-modifying CTEs share one snapshot): it deletes the change rows it sees and
reads the activities as of the same moment, so a change committed meanwhile keeps its row for the next rollup and
is never counted twice or lost, without a serializable transaction. The full recount and the incremental rollup
are made of the same pieces (``DEVELOPER_FIGURES``, ``CAMPAIGN_FIGURES``): what the incremental one writes for a
developer or campaign is what the full one would."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one

# ---------------------------------------------------------------- rollup

# The tenant's adoption-stage actions (its funnel map, or the product's defaults while it has none), as a CTE.
ADOPTION = """adoption AS (SELECT action FROM activity_funnel_map WHERE stage_key = 'adoption'
    UNION SELECT action FROM activity_funnel_defaults WHERE stage_key = 'adoption'
    AND NOT EXISTS (SELECT 1 FROM activity_funnel_map))"""

# A developer's (d) earliest own activity: the first entry of its (tenant, developer, time) index range.
OWN_FIRST = """SELECT a.occurred_at, a.source, false AS from_org, a.activity_id FROM activities a
    WHERE a.developer_id = d.developer_id ORDER BY a.occurred_at, a.activity_id LIMIT 1"""
# Its first touch: the earliest of its own activities and of its organization's (org_id, no developer); ties by id.
FIRST_TOUCH = f"""SELECT t.occurred_at, t.source, t.from_org, t.activity_id FROM (
    ({OWN_FIRST})
    UNION ALL (SELECT a.occurred_at, a.source, true, a.activity_id FROM activities a
               WHERE d.org_id IS NOT NULL AND a.org_id = d.org_id AND a.developer_id IS NULL
               ORDER BY a.occurred_at, a.activity_id LIMIT 1)) t ORDER BY t.occurred_at, t.activity_id LIMIT 1"""

# developer_stats' figures of the developers {join}ed (dirty, or every developer with join=""): those with
# activities of their own or whose organization has some. Needs the ADOPTION CTE.
DEVELOPER_FIGURES = f"""
SELECT d.developer_id, c.last_action_at, coalesce(c.total_actions, 0) AS total_actions,
       coalesce(c.clicks, 0) AS clicks, coalesce(c.attends, 0) AS attends, coalesce(c.posts, 0) AS posts,
       coalesce(c.stars, 0) AS stars, ft.occurred_at AS first_touch_at, ft.source AS first_touch_source,
       ft.from_org AS first_touch_from_org, ft.activity_id AS first_touch_activity_id, c.first_adopted_at
FROM developers d {{join}}
LEFT JOIN (
    SELECT a.developer_id, max(a.occurred_at) AS last_action_at, count(*) AS total_actions,
           count(*) FILTER (WHERE a.action = 'click') AS clicks, count(*) FILTER (WHERE a.action = 'attend') AS attends,
           count(*) FILTER (WHERE a.action = 'post') AS posts, count(*) FILTER (WHERE a.action = 'star') AS stars,
           min(a.occurred_at) FILTER (WHERE ad.action IS NOT NULL) AS first_adopted_at
    FROM activities a {{join_activities}} LEFT JOIN adoption ad ON ad.action = a.action
    WHERE a.developer_id IS NOT NULL GROUP BY a.developer_id) c ON c.developer_id = d.developer_id
LEFT JOIN LATERAL ({FIRST_TOUCH}) ft ON true
WHERE c.developer_id IS NOT NULL OR ft.occurred_at IS NOT NULL"""

DEVELOPER_COLUMNS = "last_action_at, total_actions, clicks, attends, posts, stars"
FIRST_TOUCH_COLUMNS = ("first_touch_at, first_touch_source, first_touch_from_org, first_touch_activity_id, "
                       "first_adopted_at")
ALL_DEVELOPER_COLUMNS = f"{DEVELOPER_COLUMNS}, {FIRST_TOUCH_COLUMNS}"
_STORED = ", ".join(f"developer_stats.{c}" for c in ALL_DEVELOPER_COLUMNS.split(", "))
_EXCLUDED = ", ".join(f"EXCLUDED.{c}" for c in ALL_DEVELOPER_COLUMNS.split(", "))
DEVELOPER_UPSERT = f"""
INSERT INTO developer_stats (developer_id, {ALL_DEVELOPER_COLUMNS})
SELECT developer_id, {ALL_DEVELOPER_COLUMNS} FROM fresh
ON CONFLICT (developer_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in ALL_DEVELOPER_COLUMNS.split(", "))}, updated_at = now()
WHERE ({_STORED}) IS DISTINCT FROM ({_EXCLUDED})
RETURNING 1"""

# Activities counted per campaign link (the same expressions as the triggers of t0006_community).
ALL_TOUCH_GROUPS = """
SELECT a.resource_id, a.metadata->>'utm_campaign' AS utm_campaign, a.metadata->>'shortlink_id' AS shortlink_id,
       count(*) AS n
FROM activities a
WHERE a.resource_id IS NOT NULL OR a.metadata->>'utm_campaign' IS NOT NULL OR a.metadata->>'shortlink_id' IS NOT NULL
GROUP BY 1, 2, 3"""

# Groups of activities (touch_groups: resource_id, utm_campaign, shortlink_id, n) to the campaigns they touch, as
# attribution links them (funnel.community.store_campaigns.TOUCHES): by the resource's campaign, by a utm_campaign
# equal to a campaign's attributes.utm_campaign or name, by the shortlink's campaign. An activity linked to one
# campaign twice counts once (UNION).
TOUCH_COUNTS = """
SELECT x.campaign_id, sum(g.n) AS n FROM touch_groups g CROSS JOIN LATERAL (
    SELECT r.campaign_id FROM resources r WHERE r.resource_id = g.resource_id AND r.campaign_id IS NOT NULL
    UNION
    SELECT c.campaign_id FROM campaigns c WHERE g.utm_campaign IN (c.attributes->>'utm_campaign', c.name)
    UNION
    SELECT s.campaign_id FROM shortlinks s WHERE s.shortlink_id::text = g.shortlink_id AND s.campaign_id IS NOT NULL
) x GROUP BY x.campaign_id"""

# campaign_stats' figures of the campaigns of `targets`, their touch count given by {touches} (an expression over
# s = the stored row and t = touch_counts).
CAMPAIGN_FIGURES = """
SELECT c.campaign_id, c.currency, {touches} AS actions_total,
       coalesce(conv.conversions, 0) AS conversions, coalesce(conv.weighted, 0) AS conversions_weighted,
       coalesce(cost.amount, 0) AS cost_total,
       CASE WHEN coalesce(cost.amount, 0) > 0 THEN round(coalesce(conv.weighted, 0) / cost.amount, 12) END
           AS roi_per_cost
FROM targets x JOIN campaigns c ON c.campaign_id = x.campaign_id
LEFT JOIN campaign_stats s ON s.campaign_id = c.campaign_id
LEFT JOIN touch_counts t ON t.campaign_id = c.campaign_id
LEFT JOIN LATERAL (SELECT count(*) AS conversions, sum(ac.weight) AS weighted FROM activity_campaigns ac
                   WHERE ac.campaign_id = c.campaign_id) conv ON true
LEFT JOIN LATERAL (SELECT sum(b.amount) AS amount FROM budgets b
                   WHERE b.campaign_id = c.campaign_id AND b.currency = c.currency) cost ON true"""

CAMPAIGN_COLUMNS = "currency, actions_total, conversions, conversions_weighted, cost_total, roi_per_cost"
CAMPAIGN_UPSERT = f"""
INSERT INTO campaign_stats (campaign_id, {CAMPAIGN_COLUMNS}) SELECT campaign_id, {CAMPAIGN_COLUMNS} FROM figures
ON CONFLICT (campaign_id) DO UPDATE SET currency = EXCLUDED.currency, actions_total = EXCLUDED.actions_total,
    conversions = EXCLUDED.conversions, conversions_weighted = EXCLUDED.conversions_weighted,
    cost_total = EXCLUDED.cost_total, roi_per_cost = EXCLUDED.roi_per_cost, updated_at = now()
WHERE (campaign_stats.currency, campaign_stats.actions_total, campaign_stats.conversions,
       campaign_stats.conversions_weighted, campaign_stats.cost_total, campaign_stats.roi_per_cost)
      IS DISTINCT FROM (EXCLUDED.currency, EXCLUDED.actions_total, EXCLUDED.conversions,
                        EXCLUDED.conversions_weighted, EXCLUDED.cost_total, EXCLUDED.roi_per_cost)
RETURNING 1"""

OUTCOME = """
SELECT (SELECT count(*) FROM consumed) AS changes, (SELECT max(change_id) FROM consumed) AS high_water_change_id,
       (SELECT count(*) FROM dev_written) + (SELECT count(*) FROM dev_removed) {added} AS developers_written,
       (SELECT count(*) FROM camp_written) AS campaigns_written, {relinked} AS relinked"""

# Activities only inserted since the last rollup add to the stored figures (counts add, the latest is the greatest,
# the first touch and the first adoption can only be earlier): a busy developer's new star does not recount their
# thousands of activities. The first touch of `added` is its earliest own activity (one index probe), which wins
# over the stored one (own or the organization's) only when earlier.
EARLIER_TOUCH = ("(developer_stats.first_touch_at IS NULL "
                 "OR (EXCLUDED.first_touch_at, EXCLUDED.first_touch_activity_id) "
                 "< (developer_stats.first_touch_at, developer_stats.first_touch_activity_id))")
DEVELOPER_ADD = f"""
INSERT INTO developer_stats (developer_id, {ALL_DEVELOPER_COLUMNS})
SELECT developer_id, {ALL_DEVELOPER_COLUMNS} FROM added
ON CONFLICT (developer_id) DO UPDATE SET
    last_action_at = greatest(developer_stats.last_action_at, EXCLUDED.last_action_at),
    total_actions = developer_stats.total_actions + EXCLUDED.total_actions,
    clicks = developer_stats.clicks + EXCLUDED.clicks, attends = developer_stats.attends + EXCLUDED.attends,
    posts = developer_stats.posts + EXCLUDED.posts, stars = developer_stats.stars + EXCLUDED.stars,
    {", ".join(f"{c} = CASE WHEN {EARLIER_TOUCH} THEN EXCLUDED.{c} ELSE developer_stats.{c} END"
               for c in ("first_touch_at", "first_touch_source", "first_touch_from_org", "first_touch_activity_id"))},
    first_adopted_at = least(developer_stats.first_adopted_at, EXCLUDED.first_adopted_at), updated_at = now()
RETURNING 1"""

INCREMENTAL_ROLLUP = f"""
WITH consumed AS (
    DELETE FROM community_stats_changes RETURNING change_id, developer_id, actions, clicks, attends, posts, stars,
                                                  last_action_at, action_firsts, recount, org_id, remap,
                                                  campaign_id, resource_id, utm_campaign, shortlink_id, touches,
                                                  relink),
{ADOPTION},
remapped AS (SELECT coalesce(bool_or(remap), false) AS yes FROM consumed),
-- recounted: developers marked, those of organizations whose activities changed (their first touch), and every
-- developer when the funnel map changed (their first adoption)
dirty AS (SELECT developer_id FROM consumed WHERE developer_id IS NOT NULL AND recount
          UNION SELECT d.developer_id FROM developers d
                WHERE d.org_id IN (SELECT org_id FROM consumed WHERE org_id IS NOT NULL)
          UNION SELECT d.developer_id FROM developers d WHERE (SELECT yes FROM remapped)),
inserted AS (
    SELECT c.*, (SELECT min(e.value::timestamptz) FROM jsonb_each_text(c.action_firsts) e
                 JOIN adoption ad ON ad.action = e.key) AS adopted_at
    FROM consumed c WHERE c.developer_id IS NOT NULL AND NOT c.recount
      AND NOT EXISTS (SELECT 1 FROM dirty d WHERE d.developer_id = c.developer_id)),
added AS (
    SELECT g.*, ft.occurred_at AS first_touch_at, ft.source AS first_touch_source,
           ft.from_org AS first_touch_from_org, ft.activity_id AS first_touch_activity_id
    FROM (SELECT c.developer_id, max(c.last_action_at) AS last_action_at, sum(c.actions) AS total_actions,
                 sum(c.clicks) AS clicks, sum(c.attends) AS attends, sum(c.posts) AS posts, sum(c.stars) AS stars,
                 min(c.adopted_at) AS first_adopted_at
          FROM inserted c GROUP BY c.developer_id) g
    CROSS JOIN LATERAL (SELECT g.developer_id) d
    LEFT JOIN LATERAL ({OWN_FIRST}) ft ON true),
fresh AS ({DEVELOPER_FIGURES.format(join="JOIN dirty x ON x.developer_id = d.developer_id",
                                    join_activities="JOIN dirty x ON x.developer_id = a.developer_id")}),
dev_written AS ({DEVELOPER_UPSERT}),
dev_added AS ({DEVELOPER_ADD}),
dev_removed AS (DELETE FROM developer_stats s USING dirty d WHERE s.developer_id = d.developer_id
                AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.developer_id = d.developer_id) RETURNING 1),
relinked AS (SELECT coalesce(bool_or(relink), false) AS yes FROM consumed),
touch_groups AS (
    SELECT resource_id, utm_campaign, shortlink_id, sum(touches) AS n FROM consumed
    WHERE touches <> 0 AND NOT (SELECT yes FROM relinked) GROUP BY 1, 2, 3
    UNION ALL
    SELECT * FROM ({ALL_TOUCH_GROUPS}) every_group WHERE (SELECT yes FROM relinked)),
touch_counts AS ({TOUCH_COUNTS}),
targets AS (SELECT campaign_id FROM consumed WHERE campaign_id IS NOT NULL
            UNION SELECT campaign_id FROM touch_counts
            UNION SELECT campaign_id FROM campaigns WHERE (SELECT yes FROM relinked)),
figures AS ({CAMPAIGN_FIGURES.format(touches='''CASE WHEN (SELECT yes FROM relinked) THEN coalesce(t.n, 0)
                                                     ELSE coalesce(s.actions_total, 0) + coalesce(t.n, 0) END''')}),
camp_written AS ({CAMPAIGN_UPSERT})
{OUTCOME.format(relinked="(SELECT yes FROM relinked)", added="+ (SELECT count(*) FROM dev_added)")}"""

FULL_ROLLUP = f"""
WITH consumed AS (DELETE FROM community_stats_changes RETURNING change_id),
{ADOPTION},
fresh AS ({DEVELOPER_FIGURES.format(join="", join_activities="")}),
dev_written AS ({DEVELOPER_UPSERT}),
dev_removed AS (DELETE FROM developer_stats s WHERE NOT EXISTS (SELECT 1 FROM fresh f
                                                                WHERE f.developer_id = s.developer_id) RETURNING 1),
touch_groups AS ({ALL_TOUCH_GROUPS}),
touch_counts AS ({TOUCH_COUNTS}),
targets AS (SELECT campaign_id FROM campaigns),
figures AS ({CAMPAIGN_FIGURES.format(touches="coalesce(t.n, 0)")}),
camp_written AS ({CAMPAIGN_UPSERT})
{OUTCOME.format(relinked="true", added="")}"""


def without_jit(conn: Connection) -> None:
    """No JIT compilation for the rest of the transaction: these statements read up to millions of rows, so their
    estimated cost crosses jit_above_cost, and compiling them took seconds (5 s measured, under load) where running
    them takes tens to hundreds of milliseconds."""
    conn.execute("SET LOCAL jit = off")


def mark_rollup(conn: Connection) -> None:
    """The rollup's own deletions of developer_stats rows are not changes to count again (t0006's trigger)."""
    conn.execute("SET LOCAL funnel.stats_rollup = 'on'")


def try_lock_rollup(conn: Connection) -> bool:
    """One rollup of a tenant at a time (a schedule firing while the last one still runs skips the tenant)."""
    row = fetch_one(conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended('community.stats:' || "
                                 "current_setting('app.tenant_id'), 0)) AS locked"))
    return bool(row["locked"])


def rollup_state(conn: Connection) -> Row | None:
    return conn.execute("SELECT rolled_up_at, full_at, high_water_change_id, changes, developers_written, "
                        "campaigns_written, was_full, duration_ms FROM community_stats_rollups").fetchone()


def full_rollup_due(conn: Connection) -> bool:
    """A tenant rolled up before t0009_community (its rows lack the first touch) is recounted in full once."""
    row = conn.execute("SELECT full_due FROM community_stats_rollups").fetchone()
    return bool(row and row["full_due"])


def pending_changes(conn: Connection) -> int:
    return int(fetch_one(conn.execute("SELECT count(*) AS n FROM community_stats_changes"))["n"])


def rollup_incremental(conn: Connection) -> Row:
    return fetch_one(conn.execute(INCREMENTAL_ROLLUP))


def rollup_full(conn: Connection) -> Row:
    return fetch_one(conn.execute(FULL_ROLLUP))


def save_rollup_state(conn: Connection, outcome: dict[str, Any]) -> Row:
    return fetch_one(conn.execute(
        "INSERT INTO community_stats_rollups (rolled_up_at, full_at, high_water_change_id, changes, "
        "developers_written, campaigns_written, was_full, duration_ms) "
        "VALUES (now(), CASE WHEN %(was_full)s THEN now() END, %(high_water_change_id)s, %(changes)s, "
        "%(developers_written)s, %(campaigns_written)s, %(was_full)s, %(duration_ms)s) "
        "ON CONFLICT (tenant_id) DO UPDATE SET rolled_up_at = now(), "
        "full_at = coalesce(EXCLUDED.full_at, community_stats_rollups.full_at), "
        "high_water_change_id = coalesce(EXCLUDED.high_water_change_id, community_stats_rollups.high_water_change_id), "
        "changes = EXCLUDED.changes, developers_written = EXCLUDED.developers_written, "
        "campaigns_written = EXCLUDED.campaigns_written, was_full = EXCLUDED.was_full, "
        "duration_ms = EXCLUDED.duration_ms, "
        "full_due = community_stats_rollups.full_due AND NOT EXCLUDED.was_full "
        "RETURNING rolled_up_at, full_at, high_water_change_id, changes, developers_written, campaigns_written, "
        "was_full, duration_ms", outcome))


def recomputed_developer_stats(conn: Connection) -> list[Row]:
    """developer_stats as a full recount would write them (nothing written; the rollup tests compare)."""
    return conn.execute(f"WITH {ADOPTION} SELECT developer_id, {ALL_DEVELOPER_COLUMNS} "
                        f"FROM ({DEVELOPER_FIGURES.format(join='', join_activities='')}) f "
                        "ORDER BY developer_id").fetchall()


def recomputed_campaign_stats(conn: Connection) -> list[Row]:
    return conn.execute(
        f"WITH touch_groups AS ({ALL_TOUCH_GROUPS}), touch_counts AS ({TOUCH_COUNTS}), "
        f"targets AS (SELECT campaign_id FROM campaigns) "
        f"SELECT campaign_id, {CAMPAIGN_COLUMNS} FROM ({CAMPAIGN_FIGURES.format(touches='coalesce(t.n, 0)')}) f "
        "ORDER BY campaign_id").fetchall()


def stored_developer_stats(conn: Connection) -> list[Row]:
    return conn.execute(f"SELECT developer_id, {ALL_DEVELOPER_COLUMNS} FROM developer_stats "
                        "ORDER BY developer_id").fetchall()


def stored_campaign_stats(conn: Connection) -> list[Row]:
    return conn.execute(f"SELECT campaign_id, {CAMPAIGN_COLUMNS} FROM campaign_stats ORDER BY campaign_id").fetchall()


def developer_stats(conn: Connection, developer_id: UUID) -> Row | None:
    return conn.execute(f"SELECT developer_id, {DEVELOPER_COLUMNS}, updated_at FROM developer_stats "
                        "WHERE developer_id = %s", (developer_id,)).fetchone()


def campaign_stats(conn: Connection, campaign_id: UUID) -> Row | None:
    return conn.execute(f"SELECT campaign_id, {CAMPAIGN_COLUMNS}, updated_at FROM campaign_stats "
                        "WHERE campaign_id = %s", (campaign_id,)).fetchone()


def developer_exists(conn: Connection, developer_id: UUID) -> bool:
    return conn.execute("SELECT 1 FROM developers WHERE developer_id = %s", (developer_id,)).fetchone() is not None


def campaign_exists(conn: Connection, campaign_id: UUID) -> bool:
    return conn.execute("SELECT 1 FROM campaigns WHERE campaign_id = %s", (campaign_id,)).fetchone() is not None


# ---------------------------------------------------------------- the funnel map

# The tenant's action -> stage map: its own rows, or the product's defaults while it has none.
FUNNEL_MAP = """(SELECT action, stage_key FROM activity_funnel_map
  UNION ALL SELECT action, stage_key FROM activity_funnel_defaults
  WHERE NOT EXISTS (SELECT 1 FROM activity_funnel_map))"""


def funnel_stages(conn: Connection) -> list[Row]:
    return conn.execute("SELECT stage_key, order_no, title FROM funnel_stages ORDER BY order_no").fetchall()


def funnel_map(conn: Connection) -> list[Row]:
    return conn.execute(f"SELECT m.action, m.stage_key FROM {FUNNEL_MAP} m JOIN funnel_stages s USING (stage_key) "
                        "ORDER BY s.order_no, m.action").fetchall()


def has_own_funnel_map(conn: Connection) -> bool:
    return conn.execute("SELECT 1 FROM activity_funnel_map LIMIT 1").fetchone() is not None


def replace_funnel_map(conn: Connection, mappings: Sequence[tuple[str, str]]) -> None:
    conn.execute("DELETE FROM activity_funnel_map")
    if mappings:
        conn.execute("INSERT INTO activity_funnel_map (action, stage_key) SELECT * FROM unnest(%s::text[], %s::text[])",
                     ([m[0] for m in mappings], [m[1] for m in mappings]))


# ---------------------------------------------------------------- funnel and time series

# The developers touched by a campaign in the range (its resources, utm_campaign or name, shortlinks).
CAMPAIGN_PEOPLE = """
SELECT DISTINCT a.developer_id FROM activities a
LEFT JOIN resources r ON r.resource_id = a.resource_id
LEFT JOIN shortlinks sl ON sl.shortlink_id::text = a.metadata->>'shortlink_id'
WHERE a.developer_id IS NOT NULL AND a.occurred_at >= %(start)s AND a.occurred_at < %(end)s
  AND (r.campaign_id = %(campaign_id)s OR sl.campaign_id = %(campaign_id)s
       OR a.metadata->>'utm_campaign' IN (SELECT unnest(ARRAY[c.attributes->>'utm_campaign', c.name])
                                          FROM campaigns c WHERE c.campaign_id = %(campaign_id)s))"""


def funnel_counts(conn: Connection, *, start: datetime, end: datetime, campaign_id: UUID | None) -> list[Row]:
    """Per stage (every stage of the dictionary, in order): activities mapped to it in [start, end), the developers
    who did them, and the developers whose furthest stage in the range is this one or a later one (``reached``).
    With a campaign: only the developers it touched in the range. The activities are counted per (developer,
    action) first: the map and the stages join those groups, not each of a million rows."""
    people = f"AND a.developer_id IN ({CAMPAIGN_PEOPLE})" if campaign_id else ""
    return conn.execute(f"""
        WITH per_action AS MATERIALIZED (
            SELECT a.developer_id, a.action, count(*) AS n FROM activities a
            WHERE a.occurred_at >= %(start)s AND a.occurred_at < %(end)s {people} GROUP BY 1, 2),
        acts AS MATERIALIZED (
            SELECT p.developer_id, s.stage_key, s.order_no, p.n FROM per_action p
            JOIN {FUNNEL_MAP} m ON m.action = p.action JOIN funnel_stages s ON s.stage_key = m.stage_key),
        by_stage AS (SELECT stage_key, sum(n) AS activities, count(DISTINCT developer_id) AS developers
                     FROM acts GROUP BY stage_key),
        furthest AS (SELECT max(order_no) AS order_no FROM acts WHERE developer_id IS NOT NULL GROUP BY developer_id),
        reached AS (SELECT order_no, count(*) AS n FROM furthest GROUP BY order_no)
        SELECT s.stage_key, s.order_no, s.title, coalesce(b.activities, 0) AS activities,
               coalesce(b.developers, 0) AS developers,
               (SELECT coalesce(sum(r.n), 0) FROM reached r WHERE r.order_no >= s.order_no) AS reached
        FROM funnel_stages s LEFT JOIN by_stage b ON b.stage_key = s.stage_key ORDER BY s.order_no""",
                        {"start": start, "end": end, "campaign_id": campaign_id}).fetchall()


SERIES_KEYS = {"total": "NULL::text", "action": "a.action", "stage": "m.stage_key"}


def activity_series(conn: Connection, *, start: datetime, end: datetime, unit: str, zone: str, by: str,
                    action: str | None, stage: str | None) -> list[Row]:
    """Activities and distinct developers per (bucket, key): the bucket is the local date (in ``zone``) the day,
    ISO week (from Monday) or month starts on; the key the action or the stage (by="total": none)."""
    mapped = by == "stage" or stage is not None
    join = f"JOIN {FUNNEL_MAP} m ON m.action = a.action" if mapped else ""
    filters = ""
    if action is not None:
        filters += " AND a.action = %(action)s"
    if stage is not None:
        filters += " AND m.stage_key = %(stage)s"
    return conn.execute(f"""
        SELECT date_trunc(%(unit)s, a.occurred_at AT TIME ZONE %(zone)s)::date AS bucket, {SERIES_KEYS[by]} AS key,
               count(*) AS activities, count(DISTINCT a.developer_id) AS developers
        FROM activities a {join}
        WHERE a.occurred_at >= %(start)s AND a.occurred_at < %(end)s {filters}
        GROUP BY 1, 2 ORDER BY 1, 2""",
                        {"unit": unit, "zone": zone, "start": start, "end": end, "action": action,
                         "stage": stage}).fetchall()


# ---------------------------------------------------------------- segments

SEGMENT_COLUMNS = "segment_id, name, description, kind, params, created_by, created_at, updated_at"


def insert_segment(conn: Connection, fields: dict[str, Any]) -> Row:
    return fetch_one(conn.execute(
        f"INSERT INTO developer_segments (name, description, kind, params, created_by) "
        f"VALUES (%s, %s, %s, %s, %s) RETURNING {SEGMENT_COLUMNS}",
        (fields["name"], fields.get("description"), fields["kind"], Jsonb(fields["params"]),
         fields.get("created_by"))))


def segment(conn: Connection, segment_id: UUID) -> Row | None:
    return conn.execute(f"SELECT {SEGMENT_COLUMNS} FROM developer_segments WHERE segment_id = %s",
                        (segment_id,)).fetchone()


def segments_page(conn: Connection, *, kind: str | None, after: tuple[datetime, UUID] | None,
                  limit: int) -> list[Row]:
    """Newest first."""
    clauses: list[str] = ["true"]
    params: list[Any] = []
    if kind is not None:
        clauses.append("kind = %s")
        params.append(kind)
    if after is not None:
        clauses.append("(created_at, segment_id) < (%s, %s)")
        params += [after[0], after[1]]
    return conn.execute(f"SELECT {SEGMENT_COLUMNS} FROM developer_segments WHERE {' AND '.join(clauses)} "
                        "ORDER BY created_at DESC, segment_id DESC LIMIT %s", (*params, limit + 1)).fetchall()


def update_segment(conn: Connection, segment_id: UUID, changes: dict[str, Any]) -> Row | None:
    names = [n for n in ("name", "description", "kind", "params") if n in changes]
    sets = ", ".join(f"{n} = %s" for n in names)
    values = [Jsonb(changes[n]) if n == "params" else changes[n] for n in names]
    return conn.execute(f"UPDATE developer_segments SET {sets + ', ' if sets else ''}updated_at = now() "
                        f"WHERE segment_id = %s RETURNING {SEGMENT_COLUMNS}", (*values, segment_id)).fetchone()


def delete_segment(conn: Connection, segment_id: UUID) -> bool:
    return conn.execute("DELETE FROM developer_segments WHERE segment_id = %s", (segment_id,)).rowcount > 0


MEMBER_COLUMNS = "d.developer_id, d.display_name, d.primary_email, d.org_id"


def silent_members(conn: Connection, *, active_from: datetime, silent_from: datetime,
                   after: tuple[datetime, UUID] | None, limit: int) -> list[Row]:
    """Live developers whose last action (developer_stats) is in [active_from, silent_from): active then, silent
    since. Latest first."""
    position = "AND (s.last_action_at, s.developer_id) < (%(at)s, %(id)s)" if after else ""
    return conn.execute(f"""
        SELECT {MEMBER_COLUMNS}, s.last_action_at, s.total_actions, NULL::bigint AS activities_in_period
        FROM developer_stats s JOIN developers d ON d.developer_id = s.developer_id
        WHERE s.last_action_at >= %(active_from)s AND s.last_action_at < %(silent_from)s
          AND d.merged_into IS NULL AND d.erased_at IS NULL {position}
        ORDER BY s.last_action_at DESC, s.developer_id DESC LIMIT %(limit)s""",
                        {"active_from": active_from, "silent_from": silent_from, "limit": limit + 1,
                         "at": after[0] if after else None, "id": after[1] if after else None}).fetchall()


def engaged_members(conn: Connection, *, start: datetime, end: datetime, top: int, after: tuple[int, UUID] | None,
                    limit: int) -> list[Row]:
    """The ``top`` live developers by activities in [start, end) (ties by id), most engaged first."""
    position = ("AND (r.n < %(n)s OR r.n = %(n)s AND r.developer_id > %(id)s)" if after else "")
    return conn.execute(f"""
        WITH ranked AS (
            SELECT a.developer_id, count(*) AS n FROM activities a
            JOIN developers d ON d.developer_id = a.developer_id AND d.merged_into IS NULL AND d.erased_at IS NULL
            WHERE a.occurred_at >= %(start)s AND a.occurred_at < %(end)s
            GROUP BY a.developer_id ORDER BY n DESC, a.developer_id LIMIT %(top)s)
        SELECT {MEMBER_COLUMNS}, s.last_action_at, coalesce(s.total_actions, 0) AS total_actions,
               r.n AS activities_in_period
        FROM ranked r JOIN developers d ON d.developer_id = r.developer_id
        LEFT JOIN developer_stats s ON s.developer_id = r.developer_id
        WHERE true {position}
        ORDER BY r.n DESC, r.developer_id LIMIT %(limit)s""",
                        {"start": start, "end": end, "top": top, "limit": limit + 1,
                         "n": after[0] if after else None, "id": after[1] if after else None}).fetchall()
