"""The workspace export's and restore's SQL: the export runs (one at a time per workspace), the snapshot's
catalog reads, table locks and ``COPY ... TO STDOUT``, and the restore's ``COPY ... FROM STDIN`` with what
surrounds it (row-level security and user triggers lifted for the transaction, sequences moved past the rows).

Identifiers (tables, columns) come from the catalog of the database being read, never from a request; they
are quoted with ``psycopg.sql.Identifier`` all the same.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from psycopg import sql

from funnel.db import Connection, Row
from funnel.platform.store_runs import RUN_COLUMNS

# The text COPY writes depends on these settings (a timestamptz in the session's time zone, a float's digits):
# pinned, so the export and the restore's check write the same bytes for the same rows.
SNAPSHOT_SETTINGS = {"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres",
                     "extra_float_digits": "3", "bytea_output": "hex", "client_encoding": "UTF8"}


# ---------------------------------------------------------------- export runs (in the tenant's transaction)

def lock_exports(conn: Connection) -> None:
    """Serialise the starts of this workspace's exports until the transaction ends (two concurrent POSTs)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('workspace_export:' || "
                 "current_setting('app.tenant_id', true), 0))")


def runs_in_progress(conn: Connection, kind: str) -> list[Row]:
    return conn.execute(f"SELECT {RUN_COLUMNS}, extract(epoch FROM now() - updated_at) AS idle_seconds FROM runs "
                        f"WHERE kind = %s AND status IN ('pending', 'running') ORDER BY created_at", (kind,)).fetchall()


def claim_pending_run(conn: Connection, run_id: str, kind: str) -> Row | None:
    """The run of ``kind`` moved from pending to running; None when it is not pending (a repeated delivery)."""
    return conn.execute(f"UPDATE runs SET status = 'running', started_at = coalesce(started_at, now()), "
                        f"updated_at = now() WHERE id = %s AND kind = %s AND status = 'pending' "
                        f"RETURNING {RUN_COLUMNS}", (run_id, kind)).fetchone()


def run_of_kind(conn: Connection, run_id: str, kind: str) -> Row | None:
    return conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s AND kind = %s", (run_id, kind)).fetchone()


# ---------------------------------------------------------------- catalog (export and restore)

def pin_settings(conn: Connection, tenant_id: str) -> None:
    """For the transaction: the settings COPY's text depends on, and the tenant row-level security admits."""
    for name, value in SNAPSHOT_SETTINGS.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))


def tables(conn: Connection) -> list[Row]:
    """Every table of the public schema but alembic's: name, its copied columns (in order; generated ones
    left out, COPY FROM cannot write them), whether it has ``tenant_id``."""
    return conn.execute(
        "SELECT c.relname AS name, "
        "array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attgenerated = '') AS columns, "
        "bool_or(a.attname = 'tenant_id') AS has_tenant_id "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND c.relname <> 'alembic_version' GROUP BY c.oid, c.relname ORDER BY c.relname").fetchall()


def references(conn: Connection) -> list[Row]:
    """The foreign keys between public tables: ``table`` references ``referenced``."""
    return conn.execute(
        "SELECT DISTINCT t.relname AS table, r.relname AS referenced FROM pg_constraint k "
        "JOIN pg_class t ON t.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE k.contype = 'f' AND n.nspname = 'public' ORDER BY 1, 2").fetchall()


def lock_tables(conn: Connection, names: Sequence[str]) -> None:
    """ACCESS SHARE on every table read, as pg_dump takes: rows may change (the snapshot does not see it), but
    no migration alters or drops a table before the transaction ends."""
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
        sql.SQL(", ").join(sql.Identifier(name) for name in names)))


def has_alembic_version(conn: Connection) -> bool:
    row = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL AS present").fetchone()
    return bool(row and row["present"])


def revisions(conn: Connection) -> list[str]:
    return [row["version_num"] for row in conn.execute("SELECT version_num FROM alembic_version ORDER BY 1")]


def copy_out(conn: Connection, table: str, columns: Sequence[str], tenant_id: str | None) -> Iterator[bytes]:
    """The table's copied columns (only ``tenant_id``'s rows when given) as COPY's text format, in chunks as the
    server sends them (never the whole table), in no particular order (the checksum does not depend on it)."""
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(map(sql.Identifier, columns)),
                                                sql.Identifier(table))
    if tenant_id is not None:
        query += sql.SQL(" WHERE tenant_id = {}").format(sql.Literal(tenant_id))
    statement = sql.SQL("COPY ({}) TO STDOUT").format(query)
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for chunk in copy:
            yield bytes(chunk)


# ---------------------------------------------------------------- restore (as the owner role, one transaction)

def count_rows(conn: Connection, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row["n"]) if row else 0


def lift_row_security(conn: Connection, table: str) -> None:
    """For this transaction: the owner is not bound by the table's policy (PostgreSQL refuses COPY FROM into a
    table whose policy binds the caller), and no user trigger fires (the rows a trigger would derive, a change
    log, are restored as they were)."""
    conn.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(sql.Identifier(table)))
    conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(table)))


def restore_row_security(conn: Connection, table: str) -> None:
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(sql.Identifier(table)))
    conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(sql.Identifier(table)))


def copy_in(conn: Connection, table: str, columns: Sequence[str], chunks: Iterable[bytes]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table),
                                                         sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for chunk in chunks:
            copy.write(chunk)


def owned_sequences(conn: Connection) -> list[Row]:
    """The sequences of identity and serial columns of public tables: sequence, table, column."""
    return conn.execute(
        "SELECT s.oid::regclass::text AS sequence, t.relname AS table, a.attname AS column FROM pg_class s "
        "JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass "
        "AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
        "JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
        "WHERE s.relkind = 'S' AND n.nspname = 'public' ORDER BY 1").fetchall()


def move_sequence_past_rows(conn: Connection, sequence: str, table: str, column: str) -> None:
    """The next value the sequence gives is above every restored row's."""
    conn.execute(sql.SQL("SELECT setval({}, coalesce(max({}), 0) + 1, false) FROM {}").format(
        sql.Literal(sequence), sql.Identifier(column), sql.Identifier(table)))
