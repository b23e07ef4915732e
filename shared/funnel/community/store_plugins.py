"""The community area's plugin data: plugins, their runs and their archived raw events. Every SQL statement over
those tables, as small named functions; the rules are in ``funnel.community.plugins`` and ``webhooks``.
Activities (and their resources) are written through ``funnel.community.activities``."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

PLUGIN_COLUMNS = "plugin_id, key, name, kind, enabled, config, secrets_encrypted, created_at, updated_at"
RUN_COLUMNS = "run_id, plugin_id, trigger, status, started_at, finished_at, result"
# How long a pull may stay 'running' before the next one takes it for interrupted (the cron's Lambda times out
# after 5 minutes; an API-triggered pull stops after 15 s).
STALE_RUN_INTERVAL = "15 minutes"
PREVIEW_CHARS = 200


# ---------------------------------------------------------------- plugins

def insert_plugin(conn: Connection, *, key: str, name: str, kind: str, enabled: bool, config: dict[str, Any],
                  secrets_encrypted: str | None) -> Row:
    return fetch_one(conn.execute(
        f"INSERT INTO plugins (key, name, kind, enabled, config, secrets_encrypted) VALUES (%s, %s, %s, %s, %s, %s) "
        f"RETURNING {PLUGIN_COLUMNS}", (key, name, kind, enabled, Jsonb(config), secrets_encrypted)))


def plugin(conn: Connection, plugin_id: UUID | str, *, for_update: bool = False) -> Row | None:
    lock = " FOR UPDATE" if for_update else ""
    return conn.execute(f"SELECT {PLUGIN_COLUMNS} FROM plugins WHERE plugin_id = %s{lock}",
                        (str(plugin_id),)).fetchone()


def key_taken(conn: Connection, key: str, other_than: UUID | str | None = None) -> bool:
    return conn.execute("SELECT 1 FROM plugins WHERE key = %s AND plugin_id IS DISTINCT FROM %s::uuid",
                        (key, str(other_than) if other_than else None)).fetchone() is not None


def plugins_page(conn: Connection, *, kind: str | None, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table=f"(SELECT plugin_id AS id, {PLUGIN_COLUMNS} FROM plugins) AS p",
                       columns=f"id, {PLUGIN_COLUMNS}", filters={"kind": kind}, cursor=cursor, limit=limit)


def update_plugin(conn: Connection, plugin_id: UUID | str, fields: dict[str, Any]) -> Row:
    """``fields``: any of key, name, enabled, config (a dict), secrets_encrypted."""
    values = {k: Jsonb(v) if k == "config" else v for k, v in fields.items()}
    assignments = ", ".join(f"{column} = %s" for column in values)
    return fetch_one(conn.execute(
        f"UPDATE plugins SET {assignments}, updated_at = now() WHERE plugin_id = %s RETURNING {PLUGIN_COLUMNS}",
        (*values.values(), str(plugin_id))))


def set_pull_state(conn: Connection, plugin_id: UUID | str, state: dict[str, Any]) -> None:
    """The pull's cursors, kept in the plugin's config under ``pull_state`` (the user's PATCH keeps them)."""
    conn.execute("UPDATE plugins SET config = jsonb_set(config, '{pull_state}', %s) WHERE plugin_id = %s",
                 (Jsonb(state), str(plugin_id)))


def delete_plugin(conn: Connection, plugin_id: UUID | str) -> bool:
    return conn.execute("DELETE FROM plugins WHERE plugin_id = %s", (str(plugin_id),)).rowcount > 0


def pull_plugins(conn: Connection) -> list[Row]:
    """Enabled GitHub plugins with repositories to pull, the one pulled longest ago first."""
    return conn.execute(
        f"SELECT {', '.join('p.' + c.strip() for c in PLUGIN_COLUMNS.split(','))} FROM plugins p "
        "WHERE p.enabled AND p.kind = 'github' AND jsonb_array_length(coalesce(p.config -> 'repositories', "
        "'[]'::jsonb)) > 0 "
        "ORDER BY (SELECT max(r.started_at) FROM plugin_runs r WHERE r.plugin_id = p.plugin_id "
        "AND r.trigger IN ('cron', 'manual')) ASC NULLS FIRST, p.plugin_id").fetchall()


# ---------------------------------------------------------------- runs

def insert_run(conn: Connection, plugin_id: UUID | str, trigger: str) -> Row:
    return fetch_one(conn.execute(
        f"INSERT INTO plugin_runs (plugin_id, trigger) VALUES (%s, %s) RETURNING {RUN_COLUMNS}",
        (str(plugin_id), trigger)))


def finish_run(conn: Connection, run_id: UUID | str, status: str, result: dict[str, Any]) -> Row:
    return fetch_one(conn.execute(
        f"UPDATE plugin_runs SET status = %s, result = %s, finished_at = now() WHERE run_id = %s "
        f"RETURNING {RUN_COLUMNS}", (status, Jsonb(result), str(run_id))))


def run(conn: Connection, run_id: UUID | str) -> Row | None:
    return conn.execute(f"SELECT {RUN_COLUMNS} FROM plugin_runs WHERE run_id = %s", (str(run_id),)).fetchone()


def pull_running(conn: Connection, plugin_id: UUID | str) -> Row | None:
    """A cron or manual run of the plugin still running, started less than STALE_RUN_INTERVAL ago."""
    return conn.execute(
        f"SELECT {RUN_COLUMNS} FROM plugin_runs WHERE plugin_id = %s AND trigger IN ('cron', 'manual') "
        f"AND status = 'running' AND started_at > now() - interval '{STALE_RUN_INTERVAL}' LIMIT 1",
        (str(plugin_id),)).fetchone()


def fail_stale_pulls(conn: Connection, plugin_id: UUID | str) -> int:
    """End the plugin's pulls left 'running' by a process that died (timed out) as failed."""
    return conn.execute(
        "UPDATE plugin_runs SET status = 'failed', finished_at = now(), "
        "result = result || jsonb_build_object('error', 'interrupted: the run stopped without finishing') "
        f"WHERE plugin_id = %s AND trigger IN ('cron', 'manual') AND status = 'running' "
        f"AND started_at <= now() - interval '{STALE_RUN_INTERVAL}'", (str(plugin_id),)).rowcount


def runs_page(conn: Connection, plugin_id: UUID | str, *, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table=f"(SELECT run_id AS id, started_at AS created_at, {RUN_COLUMNS} "
                                   "FROM plugin_runs) AS r",
                       columns=f"id, created_at, {RUN_COLUMNS}", filters={"plugin_id": str(plugin_id)},
                       cursor=cursor, limit=limit)


# ---------------------------------------------------------------- raw events

def archive_event(conn: Connection, plugin_id: UUID | str, event_type: str | None, payload: Any,
                  dedup_key: str) -> UUID | None:
    """The new raw event's id, or None when ``dedup_key`` was archived before (a replayed delivery)."""
    row = conn.execute(
        "INSERT INTO plugin_events_raw (plugin_id, event_type, payload, dedup_key) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, dedup_key) DO NOTHING RETURNING raw_id",
        (str(plugin_id), event_type, Jsonb(payload), dedup_key)).fetchone()
    return row["raw_id"] if row else None


def archived_event_by_key(conn: Connection, dedup_key: str) -> Row | None:
    return conn.execute("SELECT raw_id, run_id, event_type FROM plugin_events_raw WHERE dedup_key = %s",
                        (dedup_key,)).fetchone()


def attach_run(conn: Connection, raw_id: UUID, run_id: UUID) -> None:
    conn.execute("UPDATE plugin_events_raw SET run_id = %s WHERE raw_id = %s", (run_id, raw_id))


def events_page(conn: Connection, plugin_id: UUID | str, *, event_type: str | None, cursor: str | None,
                limit: int) -> Page:
    return keyset_page(
        conn, table=f"(SELECT raw_id AS id, received_at AS created_at, raw_id, plugin_id, run_id, event_type, "
                    f"dedup_key, received_at, left(payload::text, {PREVIEW_CHARS}) AS preview "
                    "FROM plugin_events_raw) AS e",
        columns="id, created_at, raw_id, plugin_id, run_id, event_type, dedup_key, received_at, preview",
        filters={"plugin_id": str(plugin_id), "event_type": event_type}, cursor=cursor, limit=limit)


def event(conn: Connection, plugin_id: UUID | str, raw_id: UUID | str) -> Row | None:
    return conn.execute(
        "SELECT raw_id, plugin_id, run_id, event_type, dedup_key, received_at, payload FROM plugin_events_raw "
        "WHERE plugin_id = %s AND raw_id = %s", (str(plugin_id), str(raw_id))).fetchone()
