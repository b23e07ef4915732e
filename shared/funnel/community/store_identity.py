"""The community area's identity data: developers, organizations, accounts, identifiers, merge logs and merge
suggestions. Every SQL statement over those tables, as small named functions; the rules are in
``funnel.community.identity`` and ``funnel.community.matching``.

Lists of rows go in as arrays (``unnest``), so a batch of accounts costs a few statements, not a few per account.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one

DEVELOPER_COLUMNS = ("developer_id, display_name, primary_email, org_id, consent_analytics, tags, merged_into, "
                     "erased_at, created_at, updated_at")
ACCOUNT_COLUMNS = ("account_id, developer_id, provider, external_user_id, handle, email, display_name, profile_url, "
                   "avatar_url, first_seen, last_seen, verified_at, is_primary, confidence, attributes, match_keys, "
                   "created_at, updated_at")
IDENTIFIER_COLUMNS = ("identifier_id, developer_id, account_id, kind, value_normalized, confidence, attributes, "
                      "first_seen, last_seen")
SUGGESTION_COLUMNS = ("suggestion_id, developer_id, other_developer_id, confidence, evidence, status, decided_by, "
                      "decided_at, created_at, updated_at")
MERGE_COLUMNS = ("merge_id, action, into_developer_id, from_developer_id, reason, evidence, moved, undoes_merge_id, "
                 "undone_at, merged_at, merged_by")


def _run(conn: Connection, query: str, params: Any) -> Cursor[Row]:
    """A statement whose arrays vary from a few items to a batch of thousands, planned for the ones it gets:
    never prepared, because a prepared statement's generic plan, made once when the tables were small and the
    arrays short, is kept as they grow (a DELETE of 5,000 developers' suggestions planned as a nested loop
    comparing every suggestion with every id took 38 s)."""
    return conn.execute(query, params, prepare=False)


def uuid_array(ids: Iterable[UUID]) -> str:
    """Ids as one array literal (``%s::uuid[]``): the driver dumps a list of thousands of UUIDs one by one."""
    return "{" + ",".join(map(str, ids)) + "}"


def lock_identities(conn: Connection) -> None:
    """One resolver at a time per tenant (until the transaction ends): two batches with the same e-mail would
    otherwise each create a developer for it."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('funnel.community.identity:' "
                 "|| current_setting('app.tenant_id', true), 0))")


# ---------------------------------------------------------------- accounts and identifiers

def accounts_by_external_id(conn: Connection, providers: Sequence[str], external_ids: Sequence[str]) -> list[Row]:
    return _run(conn,
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts a JOIN unnest(%s::text[], %s::text[]) AS k(key_provider, key_ext) "
        "ON a.provider = k.key_provider AND a.external_user_id = k.key_ext",
        (list(providers), list(external_ids))).fetchall()


def identifier_owners(conn: Connection, kinds: Sequence[str], values: Sequence[str]) -> list[Row]:
    return _run(conn,
        "SELECT i.kind, i.value_normalized, i.developer_id FROM developer_identifiers i "
        "JOIN unnest(%s::text[], %s::text[]) AS k(key_kind, key_value) "
        "ON i.kind = k.key_kind AND i.value_normalized = k.key_value",
        (list(kinds), list(values))).fetchall()


def insert_developers(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """``rows``: developer_id, display_name, primary_email (ids chosen by the caller)."""
    _run(conn,
        "INSERT INTO developers (developer_id, display_name, primary_email) "
        "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::citext[])",
        ([r["developer_id"] for r in rows], [r["display_name"] for r in rows], [r["primary_email"] for r in rows]))


def taken_primary_emails(conn: Connection, emails: Sequence[str]) -> set[str]:
    rows = _run(conn, "SELECT lower(d.primary_email::text) AS email FROM developers d "
                      "JOIN (SELECT DISTINCT unnest(%s::citext[]) AS email) e ON d.primary_email = e.email",
                      (list(emails),)).fetchall()
    return {r["email"] for r in rows}


ACCOUNT_INSERT = (("account_id", "uuid"), ("developer_id", "uuid"), ("provider", "text"),
                  ("external_user_id", "text"), ("handle", "text"), ("email", "citext"), ("display_name", "text"),
                  ("profile_url", "text"), ("avatar_url", "text"), ("attributes", "jsonb"),
                  ("first_seen", "timestamptz"), ("last_seen", "timestamptz"), ("dedup_key", "text"))


def insert_accounts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """One statement for the batch (arrays, ``unnest``); match_keys go as one text[] per row, which unnest cannot
    take apart, so they travel as a JSON array of arrays."""
    names = [c for c, _ in ACCOUNT_INSERT]
    arrays = [[Jsonb(r[c]) if c == "attributes" else r[c] for r in rows] for c in names]
    _run(conn,
        f"INSERT INTO accounts ({', '.join(names)}, match_keys) "
        f"SELECT {', '.join(f'u.{c}' for c in names)}, "
        "ARRAY(SELECT jsonb_array_elements_text(u.keys)) "
        f"FROM unnest({', '.join(f'%s::{t}[]' for _, t in ACCOUNT_INSERT)}, %s::jsonb[]) "
        f"AS u({', '.join(names)}, keys)",
        (*arrays, [Jsonb(r["match_keys"]) for r in rows]))


def update_accounts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Refresh what the provider says now (handle, e-mail, name, profile) and the developer the account resolved
    to; first_seen keeps the earliest. One statement for the batch."""
    _run(conn,
        "UPDATE accounts a SET developer_id = u.developer_id, handle = coalesce(u.handle, a.handle), "
        "email = coalesce(u.email, a.email), display_name = coalesce(u.display_name, a.display_name), "
        "profile_url = coalesce(u.profile_url, a.profile_url), avatar_url = coalesce(u.avatar_url, a.avatar_url), "
        "attributes = a.attributes || u.attributes, "
        "match_keys = ARRAY(SELECT jsonb_array_elements_text(u.keys)), "
        "last_seen = greatest(a.last_seen, u.last_seen), first_seen = least(a.first_seen, u.first_seen), "
        "updated_at = now() "
        "FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::citext[], %s::text[], %s::text[], %s::text[], "
        "%s::jsonb[], %s::jsonb[], %s::timestamptz[], %s::timestamptz[]) "
        "AS u(account_id, developer_id, handle, email, display_name, profile_url, avatar_url, attributes, keys, "
        "first_seen, last_seen) WHERE a.account_id = u.account_id",
        ([r["account_id"] for r in rows], [r["developer_id"] for r in rows], [r["handle"] for r in rows],
         [r["email"] for r in rows], [r["display_name"] for r in rows], [r["profile_url"] for r in rows],
         [r["avatar_url"] for r in rows], [Jsonb(r["attributes"]) for r in rows],
         [Jsonb(r["match_keys"]) for r in rows], [r["first_seen"] for r in rows], [r["last_seen"] for r in rows]))


def update_account(conn: Connection, account_id: UUID, fields: dict[str, Any]) -> None:
    """Refresh what the provider says now (handle, e-mail, name, profile); first_seen keeps the earliest."""
    conn.execute(
        "UPDATE accounts SET handle = coalesce(%(handle)s, handle), email = coalesce(%(email)s, email), "
        "display_name = coalesce(%(display_name)s, display_name), "
        "profile_url = coalesce(%(profile_url)s, profile_url), "
        "avatar_url = coalesce(%(avatar_url)s, avatar_url), attributes = attributes || %(attributes)s, "
        "match_keys = %(match_keys)s, last_seen = greatest(last_seen, %(last_seen)s), "
        "first_seen = least(first_seen, %(first_seen)s), updated_at = now() WHERE account_id = %(account_id)s",
        {**fields, "attributes": Jsonb(fields["attributes"]), "account_id": account_id})


def insert_identifiers(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """``rows``: developer_id, account_id, kind, value_normalized; an identifier already owned stays its owner's
    (the caller links to that owner first)."""
    _run(conn,
        "INSERT INTO developer_identifiers (developer_id, account_id, kind, value_normalized, first_seen, last_seen) "
        "SELECT d, a, k, v, now(), now() FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[]) AS r(d, a, k, v) "
        "ON CONFLICT (tenant_id, kind, value_normalized) DO UPDATE SET last_seen = now()",
        ([r["developer_id"] for r in rows], [r["account_id"] for r in rows], [r["kind"] for r in rows],
         [r["value_normalized"] for r in rows]))


def developers_by_key(conn: Connection, keys: Sequence[str], cap: int) -> list[Row]:
    """(key, developers): for each of ``keys``, the developers whose accounts carry it; a key more than ``cap``
    developers carry is left out. One statement over ``account_match_keys`` (t0005_community): per key one probe
    of its btree, reading at most ``cap + 1`` developers in the index's order, so the cost grows with the keys
    asked and not with the accounts stored, even for a key thousands carry. (An array overlap on
    ``accounts.match_keys`` could use no index under row-level security: ``&&`` is not leakproof.)"""
    return _run(conn,
                "SELECT k.key, d.developers FROM (SELECT DISTINCT unnest(%(keys)s::text[]) COLLATE \"C\" AS key) k "
                "CROSS JOIN LATERAL (SELECT array_agg(f.developer_id) AS developers FROM ("
                "SELECT DISTINCT m.developer_id FROM account_match_keys m WHERE m.match_key = k.key "
                "ORDER BY m.developer_id LIMIT %(over)s) f) d "
                "WHERE cardinality(d.developers) <= %(cap)s",
                {"keys": list(keys), "cap": cap, "over": cap + 1}).fetchall()


def accounts_of_developers(conn: Connection, developer_ids: Iterable[UUID]) -> list[Row]:
    """Per id one probe of ``idx_accounts_tenant_dev`` (the lateral subquery cannot be turned into a join), so a
    batch's thousands of ids cost the same whatever the tenant holds. As a join, without statistics (a batch's own
    transaction) the planner takes the tenant's accounts for a few dozen and hashes all of them, every call."""
    columns = ", ".join(f"a.{c.strip()}" for c in ACCOUNT_COLUMNS.split(","))
    return _run(conn, f"SELECT {columns} FROM (SELECT DISTINCT unnest(%s::uuid[]) AS id) d "
                      f"CROSS JOIN LATERAL (SELECT * FROM accounts WHERE developer_id = d.id OFFSET 0) a "
                      "ORDER BY a.created_at, a.account_id", (uuid_array(developer_ids),)).fetchall()


def identifiers_of_developers(conn: Connection, developer_ids: Iterable[UUID]) -> list[Row]:
    return _run(conn, f"SELECT {IDENTIFIER_COLUMNS} FROM developer_identifiers WHERE developer_id = ANY(%s::uuid[]) "
                      "ORDER BY kind, value_normalized", (list(developer_ids),)).fetchall()


def account_developers(conn: Connection, providers: Sequence[str], external_ids: Sequence[str]) -> list[Row]:
    return _run(conn,
        "SELECT a.provider, a.external_user_id, a.developer_id FROM accounts a "
        "JOIN unnest(%s::text[], %s::text[]) AS k(provider, ext) ON a.provider = k.provider "
        "AND a.external_user_id = k.ext", (list(providers), list(external_ids))).fetchall()


# ---------------------------------------------------------------- developers

def developers_by_id(conn: Connection, developer_ids: Iterable[UUID], *, for_update: bool = False) -> list[Row]:
    return _run(conn, f"SELECT {DEVELOPER_COLUMNS} FROM developers WHERE developer_id = ANY(%s::uuid[])"
                      + (" FOR UPDATE" if for_update else ""), (uuid_array(developer_ids),)).fetchall()


def set_merged_into(conn: Connection, developer_id: UUID, into: UUID | None) -> None:
    conn.execute("UPDATE developers SET merged_into = %s, updated_at = now() WHERE developer_id = %s",
                 (into, developer_id))


def fill_developer(conn: Connection, developer_id: UUID, display_name: str | None, org_id: UUID | None) -> None:
    """What a merge gives the surviving developer that it lacked (its own values win)."""
    conn.execute("UPDATE developers SET display_name = coalesce(display_name, %s), org_id = coalesce(org_id, %s), "
                 "updated_at = now() WHERE developer_id = %s", (display_name, org_id, developer_id))


def set_developer_fields(conn: Connection, developer_id: UUID, display_name: str | None, org_id: UUID | None) -> None:
    conn.execute("UPDATE developers SET display_name = %s, org_id = %s, updated_at = now() WHERE developer_id = %s",
                 (display_name, org_id, developer_id))


def move_accounts(conn: Connection, account_ids: Sequence[UUID], to: UUID) -> None:
    _run(conn, "UPDATE accounts SET developer_id = %s, updated_at = now() WHERE account_id = ANY(%s::uuid[])",
               (to, list(account_ids)))


def move_identifiers(conn: Connection, identifier_ids: Sequence[UUID], to: UUID) -> None:
    _run(conn, "UPDATE developer_identifiers SET developer_id = %s WHERE identifier_id = ANY(%s::uuid[])",
               (to, list(identifier_ids)))


def activity_ids_of(conn: Connection, developer_id: UUID) -> list[UUID]:
    rows = conn.execute("SELECT activity_id FROM activities WHERE developer_id = %s", (developer_id,)).fetchall()
    return [r["activity_id"] for r in rows]


def move_activities(conn: Connection, activity_ids: Sequence[UUID], to: UUID) -> int:
    return _run(conn, "UPDATE activities SET developer_id = %s WHERE activity_id = ANY(%s::uuid[])",
                      (to, list(activity_ids))).rowcount


def move_all_activities(conn: Connection, from_developer: UUID, to: UUID) -> int:
    return conn.execute("UPDATE activities SET developer_id = %s WHERE developer_id = %s",
                        (to, from_developer)).rowcount


def delete_developer_stats(conn: Connection, developer_ids: Sequence[UUID]) -> None:
    """Stats are a cache of activities (recomputed by the rollup): a merge or unmerge invalidates them."""
    _run(conn, "DELETE FROM developer_stats WHERE developer_id = ANY(%s::uuid[])", (list(developer_ids),))


# ---------------------------------------------------------------- merge logs

def insert_merge_log(conn: Connection, *, action: str, into: UUID, from_: UUID, reason: str | None,
                     evidence: list[dict[str, Any]], moved: dict[str, Any], merged_by: UUID | None,
                     undoes: UUID | None = None) -> Row:
    return fetch_one(conn.execute(
        "INSERT INTO developer_merge_logs (action, into_developer_id, from_developer_id, reason, evidence, moved, "
        f"merged_by, undoes_merge_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {MERGE_COLUMNS}",
        (action, into, from_, reason, Jsonb(evidence), Jsonb(moved), merged_by, undoes)))


def merge_log(conn: Connection, merge_id: UUID, *, for_update: bool = False) -> Row | None:
    return conn.execute(f"SELECT {MERGE_COLUMNS} FROM developer_merge_logs WHERE merge_id = %s"
                        + (" FOR UPDATE" if for_update else ""), (merge_id,)).fetchone()


def mark_merge_undone(conn: Connection, merge_id: UUID) -> None:
    conn.execute("UPDATE developer_merge_logs SET undone_at = now() WHERE merge_id = %s", (merge_id,))


def later_merges_into(conn: Connection, developer_id: UUID, after: Any) -> list[Row]:
    """Merges still in force that moved more into ``developer_id`` after ``after`` (an unmerge must not undo them)."""
    return conn.execute(f"SELECT {MERGE_COLUMNS} FROM developer_merge_logs WHERE action = 'merge' "
                        "AND undone_at IS NULL AND (into_developer_id = %s OR from_developer_id = %s) "
                        "AND merged_at > %s",
                        (developer_id, developer_id, after)).fetchall()


# ---------------------------------------------------------------- suggestions

def decided_pairs(conn: Connection, developer_ids: Sequence[UUID]) -> list[Row]:
    """Rejected ("not the same person") pairs that involve any of ``developer_ids``."""
    return _run(conn, "WITH ids AS MATERIALIZED (SELECT DISTINCT unnest(%s::uuid[]) AS id) "
                      "SELECT developer_id, other_developer_id FROM developer_merge_suggestions "
                      "WHERE status = 'rejected' AND (developer_id IN (SELECT id FROM ids) "
                      "OR other_developer_id IN (SELECT id FROM ids))", (list(developer_ids),)).fetchall()


def rejected_among(conn: Connection, pairs: Sequence[tuple[UUID, UUID]]) -> list[Row]:
    """Which of ``pairs`` (a < b) someone said are not one person (``idx_merge_suggestions_rejected``)."""
    return _run(conn,
        "SELECT s.developer_id, s.other_developer_id FROM developer_merge_suggestions s "
        "JOIN unnest(%s::uuid[], %s::uuid[]) AS p(a, b) ON s.developer_id = p.a AND s.other_developer_id = p.b "
        "WHERE s.status = 'rejected'", (uuid_array(a for a, _ in pairs), uuid_array(b for _, b in pairs))).fetchall()


def upsert_suggestions(conn: Connection, rows: Sequence[tuple[UUID, UUID, float, list[dict[str, Any]]]]) -> None:
    """Open suggestions (a < b); a pair someone decided keeps the decision. One statement for the batch, its rows
    as one JSON document: a list of tens of thousands of ``Jsonb`` evidence values costs the driver a dump each."""
    document = json.dumps([{"a": str(a), "b": str(b), "c": c, "e": e} for a, b, c, e in rows])
    _run(conn,
        "INSERT INTO developer_merge_suggestions (developer_id, other_developer_id, confidence, evidence) "
        "SELECT r.a, r.b, r.c, r.e FROM jsonb_to_recordset(%s::jsonb) AS r(a uuid, b uuid, c numeric, e jsonb) "
        "ON CONFLICT (tenant_id, developer_id, other_developer_id) DO UPDATE "
        "SET confidence = excluded.confidence, evidence = excluded.evidence, updated_at = now() "
        "WHERE developer_merge_suggestions.status = 'open'", (document,))


def drop_open_suggestions(conn: Connection, developer_ids: Sequence[UUID]) -> None:
    """Per id and column one probe of its index (the pair key, ``idx_merge_suggestions_other``), then the rows by
    primary key: as a join, without statistics (a batch's own transaction), the planner would read every
    suggestion of the tenant. "Open" is written as "not decided" because without statistics the planner takes
    'open' for a rare value and read all open suggestions through ``idx_merge_suggestions_open`` instead."""
    for column in ("developer_id", "other_developer_id"):
        _run(conn, "DELETE FROM developer_merge_suggestions WHERE suggestion_id = ANY(ARRAY("
                   "SELECT s.suggestion_id FROM (SELECT DISTINCT unnest(%s::uuid[]) AS id) d CROSS JOIN LATERAL ("
                   f"SELECT suggestion_id FROM developer_merge_suggestions WHERE {column} = d.id "
                   "AND status NOT IN ('accepted', 'rejected') OFFSET 0) s))", (uuid_array(developer_ids),))


def carry_rejections(conn: Connection, from_developer: UUID, into: UUID) -> None:
    """A "not the same person" said of the merged developer holds for the one it was merged into."""
    conn.execute(
        "INSERT INTO developer_merge_suggestions (developer_id, other_developer_id, confidence, evidence, status, "
        "decided_by, decided_at) "
        "SELECT least(%(into)s, other), greatest(%(into)s, other), confidence, evidence, 'rejected', decided_by, "
        "decided_at FROM (SELECT CASE WHEN developer_id = %(from)s THEN other_developer_id ELSE developer_id END "
        "AS other, confidence, evidence, decided_by, decided_at FROM developer_merge_suggestions "
        "WHERE status = 'rejected' AND %(from)s IN (developer_id, other_developer_id)) s WHERE other <> %(into)s "
        "ON CONFLICT (tenant_id, developer_id, other_developer_id) DO UPDATE SET status = 'rejected'",
        {"from": from_developer, "into": into})


def suggestion(conn: Connection, suggestion_id: UUID, *, for_update: bool = False) -> Row | None:
    return conn.execute(f"SELECT {SUGGESTION_COLUMNS} FROM developer_merge_suggestions WHERE suggestion_id = %s"
                        + (" FOR UPDATE" if for_update else ""), (suggestion_id,)).fetchone()


def suggestion_for_pair(conn: Connection, a: UUID, b: UUID) -> Row | None:
    return conn.execute(f"SELECT {SUGGESTION_COLUMNS} FROM developer_merge_suggestions WHERE developer_id = %s "
                        "AND other_developer_id = %s", (min(a, b), max(a, b))).fetchone()


def decide_suggestion(conn: Connection, suggestion_id: UUID, status: str, decided_by: UUID | None) -> Row:
    return fetch_one(conn.execute(
        f"UPDATE developer_merge_suggestions SET status = %s, decided_by = %s, decided_at = now(), updated_at = now() "
        f"WHERE suggestion_id = %s RETURNING {SUGGESTION_COLUMNS}", (status, decided_by, suggestion_id)))


def reject_pair(conn: Connection, a: UUID, b: UUID, decided_by: UUID | None, evidence: list[dict[str, Any]]) -> Row:
    return fetch_one(conn.execute(
        "INSERT INTO developer_merge_suggestions (developer_id, other_developer_id, confidence, evidence, status, "
        "decided_by, decided_at) VALUES (%s, %s, 0.5, %s, 'rejected', %s, now()) "
        "ON CONFLICT (tenant_id, developer_id, other_developer_id) DO UPDATE SET status = 'rejected', "
        f"decided_by = excluded.decided_by, decided_at = now(), updated_at = now() RETURNING {SUGGESTION_COLUMNS}",
        (min(a, b), max(a, b), Jsonb(evidence), decided_by)))


def open_suggestions(conn: Connection, min_confidence: float, limit: int,
                     after: tuple[float, UUID] | None = None, developer_id: UUID | None = None) -> list[Row]:
    return conn.execute(
        f"SELECT {SUGGESTION_COLUMNS} FROM developer_merge_suggestions WHERE status = 'open' "
        "AND confidence >= %(min)s AND (%(dev)s::uuid IS NULL OR %(dev)s IN (developer_id, other_developer_id)) "
        "AND (%(after_c)s::numeric IS NULL OR (confidence, suggestion_id) < (%(after_c)s, %(after_id)s::uuid)) "
        "ORDER BY confidence DESC, suggestion_id DESC LIMIT %(limit)s",
        {"min": min_confidence, "dev": developer_id, "after_c": after[0] if after else None,
         "after_id": after[1] if after else None, "limit": limit}).fetchall()


def all_open_suggestions(conn: Connection) -> list[Row]:
    return conn.execute(f"SELECT {SUGGESTION_COLUMNS} FROM developer_merge_suggestions WHERE status = 'open' "
                        "ORDER BY confidence DESC, suggestion_id").fetchall()


def live_developer_ids(conn: Connection) -> list[UUID]:
    return [r["developer_id"] for r in conn.execute(
        "SELECT developer_id FROM developers WHERE merged_into IS NULL ORDER BY created_at, developer_id").fetchall()]


def all_account_developers(conn: Connection) -> list[Row]:
    return conn.execute("SELECT provider, external_user_id, developer_id FROM accounts").fetchall()
