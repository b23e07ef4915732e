"""The SQL of one identity across the product (funnel.community.crossarea): touches made activities, the
organization <-> outreach company link, the channels (e-mail campaigns, outreach tasks) linked to DRM campaigns,
the cross-area parts of the 360 profile and the first-touch funnel.

Reads of other areas' tables are read-only and by key, as e-mail reads outreach's contacts for its recipients:
``contacts``, ``task_targets`` and ``sent_history`` (outreach) for an organization's companies, ``email_campaigns``
and ``tasks`` by id when a channel is linked. Row-level security keeps every statement within the tenant.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one

ACTIVITY_COLUMNS = ("activity_id, developer_id, org_id, account_id, resource_id, action, occurred_at, source, "
                    "source_ref, category, group_key, metadata, confidence::float8 AS confidence")
RESOURCE_COLUMNS = "resource_id, category, external_id, title, campaign_id, created_at, updated_at"


# ---------------------------------------------------------------- who a touch is

def developers_of_email(conn: Connection, value_normalized: str) -> list[Row]:
    """The live developers holding the e-mail identifier ``value_normalized`` or an ``email`` account of it
    (``developer_id, consent_analytics``): at most one each, possibly the same one."""
    return conn.execute(
        "SELECT d.developer_id, d.consent_analytics FROM developers d WHERE d.merged_into IS NULL AND d.developer_id "
        "IN (SELECT developer_id FROM developer_identifiers WHERE kind = 'email' AND value_normalized = %(v)s "
        "UNION SELECT developer_id FROM accounts WHERE provider = 'email' AND external_user_id = %(v)s)",
        {"v": value_normalized}).fetchall()


def organizations_at_domain(conn: Connection, domain: str) -> list[Row]:
    """Organizations whose primary domain is ``domain`` (stored normalised: funnel.community.developers)."""
    return conn.execute("SELECT org_id, name, domain_primary FROM organizations WHERE lower(domain_primary::text) = %s "
                        "ORDER BY created_at, org_id", (domain,)).fetchall()


def shortlinks_by_keys(conn: Connection, keys: Sequence[str]) -> list[Row]:
    return conn.execute("SELECT shortlink_id, key, host, campaign_id FROM shortlinks WHERE key = ANY(%s::text[])",
                        (list(keys),)).fetchall()


# ---------------------------------------------------------------- channel resources

def resources_of(conn: Connection, category: str, external_ids: Sequence[str]) -> list[Row]:
    return conn.execute(f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE category = %s "
                        "AND external_id = ANY(%s::text[])", (category, list(external_ids))).fetchall()


def ensure_resource(conn: Connection, category: str, external_id: str, title: str | None) -> Row:
    """The channel's resource, created without a campaign when missing (a title given refreshes a missing one)."""
    return fetch_one(conn.execute(
        "INSERT INTO resources AS r (category, external_id, title) VALUES (%s, %s, %s) "
        "ON CONFLICT (tenant_id, category, external_id) WHERE external_id IS NOT NULL DO UPDATE SET "
        "title = coalesce(r.title, EXCLUDED.title) "
        f"RETURNING {RESOURCE_COLUMNS}", (category, external_id, title)))


def link_resource(conn: Connection, category: str, external_id: str, title: str | None, campaign_id: UUID) -> Row:
    return fetch_one(conn.execute(
        "INSERT INTO resources AS r (category, external_id, title, campaign_id) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, category, external_id) WHERE external_id IS NOT NULL DO UPDATE SET "
        "campaign_id = EXCLUDED.campaign_id, title = coalesce(EXCLUDED.title, r.title), "
        "updated_at = CASE WHEN r.campaign_id IS NOT DISTINCT FROM EXCLUDED.campaign_id THEN r.updated_at "
        f"ELSE now() END RETURNING {RESOURCE_COLUMNS}", (category, external_id, title, campaign_id)))


def unlink_resource(conn: Connection, category: str, external_id: str, campaign_id: UUID) -> bool:
    """The channel's resource no longer names ``campaign_id`` (it stays: its activities point at it)."""
    return conn.execute("UPDATE resources SET campaign_id = NULL, updated_at = now() WHERE category = %s "
                        "AND external_id = %s AND campaign_id = %s", (category, external_id, campaign_id)).rowcount > 0


def linked_resources(conn: Connection, campaign_id: UUID, categories: Sequence[str]) -> list[Row]:
    return conn.execute(f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE campaign_id = %s "
                        "AND category = ANY(%s::text[]) ORDER BY category, created_at, resource_id",
                        (campaign_id, list(categories))).fetchall()


def campaign_exists(conn: Connection, campaign_id: UUID) -> bool:
    return conn.execute("SELECT 1 FROM campaigns WHERE campaign_id = %s", (campaign_id,)).fetchone() is not None


def email_campaign(conn: Connection, email_campaign_id: UUID) -> Row | None:
    """E-mail's campaign by id (read-only): ``id, name``."""
    return conn.execute("SELECT id, name FROM email_campaigns WHERE id = %s", (email_campaign_id,)).fetchone()


def outreach_task(conn: Connection, task_id: UUID) -> Row | None:
    """Outreach's send task by id (read-only): ``id, name``."""
    return conn.execute("SELECT id, name FROM tasks WHERE id = %s", (task_id,)).fetchone()


# ---------------------------------------------------------------- organization activities

def insert_org_activity(conn: Connection, row: dict[str, Any]) -> UUID | None:
    """An activity of an organization (no developer); None when its dedup key is recorded already."""
    found = conn.execute(
        "INSERT INTO activities (org_id, resource_id, action, occurred_at, source, source_ref, category, group_key, "
        "metadata, dedup_key) VALUES (%(org_id)s, %(resource_id)s, %(action)s, %(occurred_at)s, %(source)s, "
        "%(source_ref)s, %(category)s, %(group_key)s, %(metadata)s, %(dedup_key)s) "
        "ON CONFLICT (tenant_id, dedup_key) DO NOTHING RETURNING activity_id",
        {**row, "metadata": Jsonb(row["metadata"]) if row.get("metadata") is not None else None}).fetchone()
    return found["activity_id"] if found else None


def activity_by_dedup_key(conn: Connection, dedup_key: str) -> Row | None:
    return conn.execute(f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE dedup_key = %s", (dedup_key,)).fetchone()


def org_activities(conn: Connection, org_id: UUID, limit: int) -> list[Row]:
    return conn.execute(f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE org_id = %s "
                        "ORDER BY occurred_at DESC, activity_id DESC LIMIT %s", (org_id, limit)).fetchall()


def developer_activities_of_source(conn: Connection, developer_id: UUID, source: str, limit: int) -> list[Row]:
    return conn.execute(f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE developer_id = %s AND source = %s "
                        "ORDER BY occurred_at DESC, activity_id DESC LIMIT %s",
                        (developer_id, source, limit)).fetchall()


# ---------------------------------------------------------------- outreach companies

def companies_at_domains(conn: Connection, domains: Sequence[str], limit: int) -> list[Row]:
    """Outreach contacts whose website domain, or whose e-mail address's domain, is one of ``domains``, each with
    its latest send-task target (status, task, when) and its last submission (``sent_history``)."""
    return conn.execute(
        "SELECT c.id AS contact_id, c.company_name, c.domain, c.email::text AS email, c.default_url, "
        "t.status AS target_status, t.task_id, t.at AS target_updated_at, h.last_sent_at, "
        "coalesce(h.submissions, 0) AS submissions, c.created_at "
        "FROM contacts c "
        "LEFT JOIN LATERAL (SELECT status, task_id, coalesce(last_attempt_at, created_at) AS at FROM task_targets "
        "  WHERE contact_id = c.id ORDER BY coalesce(last_attempt_at, created_at) DESC, id DESC LIMIT 1) t ON true "
        "LEFT JOIN LATERAL (SELECT max(sent_at) AS last_sent_at, count(*) AS submissions FROM sent_history "
        "  WHERE domain = c.domain OR contact_id = c.id) h ON true "
        "WHERE c.domain = ANY(%(d)s::text[]) OR lower(split_part(c.email::text, '@', 2)) = ANY(%(d)s::text[]) "
        "ORDER BY c.company_name, c.id LIMIT %(limit)s", {"d": list(domains), "limit": limit}).fetchall()


# ---------------------------------------------------------------- the first-touch funnel

def adoption_actions(conn: Connection) -> list[str]:
    """The tenant's adoption-stage actions (its activity_funnel_map; the product's defaults until it has one)."""
    return [r["action"] for r in conn.execute(
        "SELECT action FROM activity_funnel_map WHERE stage_key = 'adoption' "
        "UNION SELECT action FROM activity_funnel_defaults WHERE stage_key = 'adoption' "
        "AND NOT EXISTS (SELECT 1 FROM activity_funnel_map) ORDER BY action").fetchall()]


def first_touch_counts(conn: Connection, *, sources: Sequence[str], touched_from: datetime | None,
                       touched_to: datetime | None) -> list[Row]:
    """Per first-touch source (``sources`` by name, every other source as 'other'): how many live developers were
    first touched then (``touched``), and how many of them reached an adoption action (``adopted``), as of the last
    stats rollup: ``developer_stats`` keeps each developer's first touch (its own activities and its organization's)
    and first adoption (funnel.community.store_stats), so this reads one row per developer."""
    return conn.execute(
        "SELECT CASE WHEN s.first_touch_source = ANY(%(sources)s::text[]) THEN s.first_touch_source ELSE 'other' END "
        "AS source, count(*) AS touched, count(s.first_adopted_at) AS adopted "
        "FROM developer_stats s JOIN developers d ON d.developer_id = s.developer_id "
        "WHERE d.merged_into IS NULL AND d.erased_at IS NULL AND s.first_touch_at IS NOT NULL "
        "AND (%(from)s::timestamptz IS NULL OR s.first_touch_at >= %(from)s) "
        "AND (%(to)s::timestamptz IS NULL OR s.first_touch_at < %(to)s) GROUP BY 1",
        {"sources": list(sources), "from": touched_from, "to": touched_to}).fetchall()
