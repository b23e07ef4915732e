"""The SQL of campaigns, their budget entries, resources, attribution settings and ``activity_campaigns`` (the
attribution rows). The rules are in ``funnel.community.campaigns``.

Lists are keyset pages by (created_at, id), newest first (``LIMIT limit + 1``: the extra row only says there is a
next page). Money stays ``numeric`` from the table to the response (psycopg gives ``Decimal``).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one

# The sums of a campaign's budget entries, one per currency.
SPENT = ("coalesce((SELECT jsonb_agg(jsonb_build_object('currency', s.currency, 'amount', s.amount::text) "
         "ORDER BY s.currency) FROM (SELECT currency, sum(amount) AS amount FROM budgets b "
         "WHERE b.campaign_id = c.campaign_id GROUP BY currency) s), '[]'::jsonb) AS spent")
CAMPAIGN_COLUMNS = ("c.campaign_id, c.name, c.channel, c.start_date, c.end_date, c.budget_total, c.currency, "
                    f"c.attributes, c.created_at, c.updated_at, {SPENT}")
CAMPAIGN_FIELDS = ("name", "channel", "start_date", "end_date", "budget_total", "currency", "attributes")
BUDGET_COLUMNS = "budget_id, campaign_id, category, amount, currency, spent_at, source, memo, meta, created_at"
BUDGET_FIELDS = ("category", "amount", "currency", "spent_at", "source", "memo", "meta")
RESOURCE_COLUMNS = ("resource_id, category, group_key, title, url, external_id, campaign_id, attributes, created_at, "
                    "updated_at")
RESOURCE_FIELDS = ("category", "group_key", "title", "url", "external_id", "campaign_id", "attributes")
JSON_FIELDS = ("attributes", "meta")


def _value(field: str, value: Any) -> Any:
    return Jsonb(value) if field in JSON_FIELDS and value is not None else value


def _assignments(fields: dict[str, Any], allowed: Sequence[str]) -> tuple[str, list[Any]]:
    names = [f for f in allowed if f in fields]
    return ", ".join(f"{f} = %s" for f in names), [_value(f, fields[f]) for f in names]


def _after(clauses: list[str], params: list[Any], after: tuple[datetime, UUID] | None, id_column: str,
           alias: str = "") -> None:
    if after is not None:
        clauses.append(f"({alias}created_at, {alias}{id_column}) < (%s, %s)")
        params += [after[0], after[1]]


# ---------------------------------------------------------------- campaigns

def insert_campaign(conn: Connection, fields: dict[str, Any]) -> UUID:
    names = [f for f in CAMPAIGN_FIELDS if f in fields]
    placeholders = ", ".join(["%s"] * len(names))
    row = fetch_one(conn.execute(f"INSERT INTO campaigns ({', '.join(names)}) VALUES ({placeholders}) "
                                 "RETURNING campaign_id", [_value(f, fields[f]) for f in names]))
    return row["campaign_id"]


def campaign(conn: Connection, campaign_id: UUID, *, for_update: bool = False) -> Row | None:
    lock = " FOR UPDATE OF c" if for_update else ""
    return conn.execute(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns c WHERE c.campaign_id = %s{lock}",
                        (campaign_id,)).fetchone()


def campaigns_page(conn: Connection, *, channel: str | None, q: str | None, active_on: date | None,
                   after: tuple[datetime, UUID] | None, limit: int) -> list[Row]:
    clauses: list[str] = []
    params: list[Any] = []
    if channel is not None:
        clauses.append("c.channel = %s")
        params.append(channel)
    if q is not None:
        clauses.append("c.name ILIKE %s")
        params.append(q)
    if active_on is not None:
        clauses.append("(c.start_date IS NULL OR c.start_date <= %s) AND (c.end_date IS NULL OR c.end_date >= %s)")
        params += [active_on, active_on]
    _after(clauses, params, after, "campaign_id", "c.")
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return conn.execute(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns c {where} "
                        "ORDER BY c.created_at DESC, c.campaign_id DESC LIMIT %s", (*params, limit + 1)).fetchall()


def update_campaign(conn: Connection, campaign_id: UUID, changes: dict[str, Any]) -> None:
    sets, params = _assignments(changes, CAMPAIGN_FIELDS)
    conn.execute(f"UPDATE campaigns SET {sets + ', ' if sets else ''}updated_at = now() WHERE campaign_id = %s",
                 (*params, campaign_id))


def delete_campaign(conn: Connection, campaign_id: UUID) -> bool:
    return conn.execute("DELETE FROM campaigns WHERE campaign_id = %s", (campaign_id,)).rowcount > 0


def campaigns_exist(conn: Connection, campaign_ids: Sequence[UUID]) -> set[UUID]:
    rows = conn.execute("SELECT campaign_id FROM campaigns WHERE campaign_id = ANY(%s)",
                        (list(campaign_ids),)).fetchall()
    return {r["campaign_id"] for r in rows}


# ---------------------------------------------------------------- budgets

def insert_budget(conn: Connection, campaign_id: UUID, fields: dict[str, Any]) -> Row:
    names = [f for f in BUDGET_FIELDS if f in fields]
    return fetch_one(conn.execute(f"INSERT INTO budgets (campaign_id, {', '.join(names)}) "
                           f"VALUES (%s, {', '.join(['%s'] * len(names))}) RETURNING {BUDGET_COLUMNS}",
                     [campaign_id, *(_value(f, fields[f]) for f in names)]))


def budget(conn: Connection, campaign_id: UUID, budget_id: UUID) -> Row | None:
    return conn.execute(f"SELECT {BUDGET_COLUMNS} FROM budgets WHERE campaign_id = %s AND budget_id = %s",
                        (campaign_id, budget_id)).fetchone()


def budgets_page(conn: Connection, campaign_id: UUID, *, category: str | None, currency: str | None,
                 spent_from: date | None, spent_to: date | None, after: tuple[datetime, UUID] | None,
                 limit: int) -> list[Row]:
    clauses: list[str] = ["campaign_id = %s"]
    params: list[Any] = [campaign_id]
    for clause, value in (("category = %s", category), ("currency = %s", currency), ("spent_at >= %s", spent_from),
                          ("spent_at < %s", spent_to)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    _after(clauses, params, after, "budget_id")
    return conn.execute(f"SELECT {BUDGET_COLUMNS} FROM budgets WHERE {' AND '.join(clauses)} "
                        "ORDER BY created_at DESC, budget_id DESC LIMIT %s", (*params, limit + 1)).fetchall()


def update_budget(conn: Connection, campaign_id: UUID, budget_id: UUID, changes: dict[str, Any]) -> Row | None:
    sets, params = _assignments(changes, BUDGET_FIELDS)
    if not sets:
        return budget(conn, campaign_id, budget_id)
    return conn.execute(f"UPDATE budgets SET {sets} WHERE campaign_id = %s AND budget_id = %s "
                        f"RETURNING {BUDGET_COLUMNS}", (*params, campaign_id, budget_id)).fetchone()


def delete_budget(conn: Connection, campaign_id: UUID, budget_id: UUID) -> bool:
    return conn.execute("DELETE FROM budgets WHERE campaign_id = %s AND budget_id = %s",
                        (campaign_id, budget_id)).rowcount > 0


def cost_by_currency(conn: Connection, campaign_id: UUID) -> list[Row]:
    return conn.execute("SELECT currency, sum(amount) AS amount FROM budgets WHERE campaign_id = %s "
                        "GROUP BY currency ORDER BY currency", (campaign_id,)).fetchall()


# ---------------------------------------------------------------- resources

def insert_resource(conn: Connection, fields: dict[str, Any]) -> Row:
    names = [f for f in RESOURCE_FIELDS if f in fields]
    placeholders = ", ".join(["%s"] * len(names))
    return fetch_one(conn.execute(f"INSERT INTO resources ({', '.join(names)}) VALUES ({placeholders}) "
                                  f"RETURNING {RESOURCE_COLUMNS}", [_value(f, fields[f]) for f in names]))


def resource(conn: Connection, resource_id: UUID) -> Row | None:
    return conn.execute(f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE resource_id = %s",
                        (resource_id,)).fetchone()


def resources_page(conn: Connection, *, category: str | None, group_key: str | None, campaign_id: UUID | None,
                   after: tuple[datetime, UUID] | None, limit: int) -> list[Row]:
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (("category = %s", category), ("group_key = %s", group_key),
                          ("campaign_id = %s", campaign_id)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    _after(clauses, params, after, "resource_id")
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return conn.execute(f"SELECT {RESOURCE_COLUMNS} FROM resources {where} "
                        "ORDER BY created_at DESC, resource_id DESC LIMIT %s", (*params, limit + 1)).fetchall()


def update_resource(conn: Connection, resource_id: UUID, changes: dict[str, Any]) -> Row | None:
    sets, params = _assignments(changes, RESOURCE_FIELDS)
    return conn.execute(f"UPDATE resources SET {sets + ', ' if sets else ''}updated_at = now() "
                        f"WHERE resource_id = %s RETURNING {RESOURCE_COLUMNS}", (*params, resource_id)).fetchone()


def delete_resource(conn: Connection, resource_id: UUID) -> bool:
    return conn.execute("DELETE FROM resources WHERE resource_id = %s", (resource_id,)).rowcount > 0


# ---------------------------------------------------------------- attribution

def attribution_settings(conn: Connection) -> Row | None:
    return conn.execute("SELECT model, half_life_days::float8 AS half_life_days, lookback_days, conversion_actions, "
                        "updated_at FROM attribution_settings").fetchone()


def save_attribution_settings(conn: Connection, settings: dict[str, Any]) -> Row:
    return fetch_one(conn.execute(
        "INSERT INTO attribution_settings (model, half_life_days, lookback_days, conversion_actions) "
              "VALUES (%(model)s, %(half_life_days)s, %(lookback_days)s, %(conversion_actions)s) "
              "ON CONFLICT (tenant_id) DO UPDATE SET model = EXCLUDED.model, "
              "half_life_days = EXCLUDED.half_life_days, lookback_days = EXCLUDED.lookback_days, "
              "conversion_actions = EXCLUDED.conversion_actions, updated_at = now() "
              "RETURNING model, half_life_days::float8 AS half_life_days, lookback_days, conversion_actions, "
              "updated_at", settings))


def lock_attribution(conn: Connection) -> None:
    """Two recomputations of one tenant run one after the other (each deletes and inserts a window's rows)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('community.attribution:' || "
                 "current_setting('app.tenant_id'), 0))")


# Who did an activity: its developer; else the developer its anonymous id was last seen with (a click before the
# visitor signed in is theirs); else the anonymous id itself.
PERSON = ("coalesce(a.developer_id::text, (SELECT x.developer_id::text FROM activities x WHERE x.anon_id = a.anon_id "
          "AND x.developer_id IS NOT NULL ORDER BY x.occurred_at DESC, x.activity_id DESC LIMIT 1), "
          "'anon:' || a.anon_id)")


def conversions(conn: Connection, *, actions: Sequence[str], start: datetime, end: datetime) -> list[Row]:
    """The window's conversions of known people (a developer, else an anonymous id)."""
    return conn.execute(
        f"SELECT a.activity_id, a.occurred_at, {PERSON} AS person FROM activities a "
        "WHERE a.action = ANY(%s) AND a.occurred_at >= %s AND a.occurred_at < %s "
        "AND (a.developer_id IS NOT NULL OR a.anon_id IS NOT NULL) ORDER BY a.occurred_at, a.activity_id",
        (list(actions), start, end)).fetchall()


# A touch: an activity of a person linked to a campaign by its resource, by its metadata's utm_campaign (the
# campaign's attributes.utm_campaign, or its name) or by its metadata's shortlink_id (the shortlink's campaign).
TOUCHES = f"""
WITH people AS (SELECT unnest(%(people)s::text[]) AS person),
their_anon_ids AS (
    SELECT DISTINCT anon_id FROM activities
    WHERE anon_id IS NOT NULL AND developer_id::text IN (SELECT person FROM people)
),
acts AS (
    SELECT * FROM (
        SELECT a.activity_id, a.occurred_at, a.resource_id, a.metadata, {PERSON} AS person
        FROM activities a
        WHERE a.occurred_at >= %(start)s AND a.occurred_at < %(end)s
          AND (a.developer_id::text IN (SELECT person FROM people)
               OR a.developer_id IS NULL AND (a.anon_id IN (SELECT anon_id FROM their_anon_ids)
                                              OR 'anon:' || a.anon_id IN (SELECT person FROM people)))
    ) candidates WHERE person IN (SELECT person FROM people)
)
SELECT DISTINCT t.activity_id, t.occurred_at, t.person, t.campaign_id FROM (
    SELECT acts.activity_id, acts.occurred_at, acts.person, r.campaign_id
    FROM acts JOIN resources r ON r.resource_id = acts.resource_id WHERE r.campaign_id IS NOT NULL
    UNION ALL
    SELECT acts.activity_id, acts.occurred_at, acts.person, c.campaign_id
    FROM acts JOIN campaigns c ON acts.metadata->>'utm_campaign' IN (c.attributes->>'utm_campaign', c.name)
    UNION ALL
    SELECT acts.activity_id, acts.occurred_at, acts.person, s.campaign_id
    FROM acts JOIN shortlinks s ON s.shortlink_id::text = acts.metadata->>'shortlink_id'
    WHERE s.campaign_id IS NOT NULL
) t
ORDER BY t.person, t.occurred_at, t.activity_id, t.campaign_id
"""


def touches(conn: Connection, *, people: Sequence[str], start: datetime, end: datetime) -> list[Row]:
    return conn.execute(TOUCHES, {"people": list(people), "start": start, "end": end}).fetchall()


def delete_window_attribution(conn: Connection, *, start: datetime, end: datetime) -> int:
    """Every attribution row of an activity in the window, whatever action converted when they were written."""
    return conn.execute("DELETE FROM activity_campaigns ac USING activities a WHERE a.activity_id = ac.activity_id "
                        "AND a.occurred_at >= %s AND a.occurred_at < %s", (start, end)).rowcount


def insert_attribution(conn: Connection, rows: Sequence[tuple[UUID, UUID, Decimal]]) -> int:
    if not rows:
        return 0
    return conn.execute(
        "INSERT INTO activity_campaigns (activity_id, campaign_id, weight) "
        "SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::numeric[])",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])).rowcount


def attributed_conversions(conn: Connection, campaign_id: UUID, *, start: datetime | None,
                           end: datetime | None) -> Decimal:
    row = fetch_one(conn.execute("SELECT coalesce(sum(ac.weight), 0) AS conversions FROM activity_campaigns ac "
                          "JOIN activities a ON a.activity_id = ac.activity_id WHERE ac.campaign_id = %s "
                          "AND (%s::timestamptz IS NULL OR a.occurred_at >= %s) "
                          "AND (%s::timestamptz IS NULL OR a.occurred_at < %s)",
                    (campaign_id, start, start, end, end)))
    return Decimal(row["conversions"])
