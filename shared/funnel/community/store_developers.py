"""The SQL of the community API's reads and of the writes identity resolution does not do: developer search and
the 360 profile, organizations, account and identifier lists, suggestion and merge-history pages, manual
developers and erasure. The rules are in ``funnel.community.developers``; the resolution and merge SQL stays in
``funnel.community.store_identity``.

Lists are keyset pages (``LIMIT limit + 1``, the extra row only says there is a next page): by (created_at, id)
newest first, suggestions by (confidence, id) highest first, merge history by (merged_at, id) newest first.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one

DEVELOPER_COLUMNS = ("developer_id, display_name, primary_email, org_id, consent_analytics, tags, merged_into, "
                     "erased_at, created_at, updated_at")
# What a list or a suggestion shows of a developer: its organization's name and its accounts' count and providers.
SUMMARY_SELECT = (
    "SELECT d.developer_id, d.display_name, d.primary_email, d.org_id, o.name AS org_name, d.tags, "
    "d.consent_analytics, d.merged_into, d.erased_at, d.created_at, "
    "coalesce(a.account_count, 0) AS account_count, coalesce(a.providers, '{{}}') AS providers "
    "FROM {developers} d LEFT JOIN organizations o ON o.org_id = d.org_id "
    "LEFT JOIN LATERAL (SELECT count(*) AS account_count, array_agg(DISTINCT provider ORDER BY provider) AS providers "
    "FROM accounts WHERE accounts.developer_id = d.developer_id) a ON true ")
ACCOUNT_COLUMNS = ("account_id, developer_id, provider, external_user_id, handle, email, display_name, profile_url, "
                   "avatar_url, first_seen, last_seen, verified_at, is_primary, confidence, attributes, created_at, "
                   "updated_at")
IDENTIFIER_COLUMNS = ("identifier_id, developer_id, account_id, kind, value_normalized, confidence, attributes, "
                      "first_seen, last_seen")
ORGANIZATION_COLUMNS = ("o.org_id, o.name, o.domain_primary, o.attributes, o.created_at, o.updated_at, "
                        "(SELECT count(*) FROM developers d WHERE d.org_id = o.org_id AND d.merged_into IS NULL "
                        "AND d.erased_at IS NULL) AS developer_count")
ACTIVITY_COLUMNS = ("activity_id, account_id, resource_id, action, occurred_at, source, source_ref, category, "
                    "group_key, metadata, confidence")
SUGGESTION_COLUMNS = ("suggestion_id, developer_id, other_developer_id, confidence, evidence, status, decided_by, "
                      "decided_at, created_at, updated_at")
MERGE_COLUMNS = ("merge_id, action, into_developer_id, from_developer_id, reason, evidence, moved, undoes_merge_id, "
                 "undone_at, merged_at, merged_by")


# ---------------------------------------------------------------- developers

# Above every character a term can continue with (the terms' "C" collation orders by code point).
PREFIX_END = "\U0010ffff"


def _prefix_match(alternatives: Sequence[Sequence[str]], params: dict[str, Any]) -> str:
    """Developers having, for one of ``alternatives``, a term starting with each of its words: a range of the
    (tenant_id, term) btree per word (text >= and < are leakproof, so row-level security lets the index serve)."""
    groups = []
    for a, words in enumerate(alternatives):
        selects = []
        for w, word in enumerate(words):
            params[f"w{a}_{w}"] = word
            selects.append(f"SELECT developer_id FROM developer_search_terms WHERE term >= lower(%(w{a}_{w})s) "
                           f"AND term < lower(%(w{a}_{w})s) || %(prefix_end)s")
        groups.append("(" + " INTERSECT ".join(selects) + ")")
    params["prefix_end"] = PREFIX_END
    return " UNION ".join(groups)


def search_developers(conn: Connection, *, alternatives: Sequence[Sequence[str]], org_like: str | None,
                      email: str | None, tag: str | None, org_id: UUID | None, include_erased: bool,
                      after: tuple[datetime, UUID] | None, limit: int) -> list[Row]:
    """Live developers, newest first. A developer matches when, for one of ``alternatives`` (lists of words),
    each word starts one of its search terms (developer_search_terms: name words, e-mails, handles, name readings;
    community_0002_search_terms), when its organization's name matches ``org_like`` (an ILIKE pattern; few
    organizations), or when it holds the e-mail identifier ``email`` (normalised as identity stores it)."""
    params: dict[str, Any] = {"org_like": org_like, "email": email, "tag": tag, "org_id": org_id,
                              "after_at": after[0] if after else None, "after_id": after[1] if after else None,
                              "limit": limit + 1}
    matches: list[str] = []
    if any(alternatives):
        matches.append(_prefix_match([words for words in alternatives if words], params))
    if org_like is not None:
        matches.append("SELECT developer_id FROM developers WHERE org_id IN "
                       "(SELECT org_id FROM organizations WHERE name ILIKE %(org_like)s)")
    if email is not None:
        matches.append("SELECT developer_id FROM developer_identifiers WHERE kind = 'email' "
                       "AND value_normalized = %(email)s")
    where = ["d.merged_into IS NULL"]
    if not include_erased:
        where.append("d.erased_at IS NULL")
    if matches:
        where.append(f"d.developer_id = ANY(ARRAY({' UNION '.join(matches)}))")
    if tag is not None:
        where.append("d.tags @> ARRAY[%(tag)s::text]")
    if org_id is not None:
        where.append("d.org_id = %(org_id)s")
    if after is not None:
        where.append("(d.created_at, d.developer_id) < (%(after_at)s, %(after_id)s)")
    # ANY(ARRAY(...)), not IN (...): the matched ids are collected first and the developers fetched by key; as a
    # semi-join the planner hashed a scan of every developer once the terms had statistics.
    # The page first, then the summaries of its rows only (not of every developer that matched).
    page = (f"(SELECT * FROM developers d WHERE {' AND '.join(where)} "
            "ORDER BY d.created_at DESC, d.developer_id DESC LIMIT %(limit)s)")
    return conn.execute(SUMMARY_SELECT.format(developers=page) + "ORDER BY d.created_at DESC, d.developer_id DESC",
                        params).fetchall()


def developer_summaries(conn: Connection, developer_ids: Sequence[UUID]) -> list[Row]:
    return conn.execute(SUMMARY_SELECT.format(developers="developers") + "WHERE d.developer_id = ANY(%s::uuid[])",
                        (list(developer_ids),)).fetchall()


def developer(conn: Connection, developer_id: UUID, *, for_update: bool = False) -> Row | None:
    return conn.execute(f"SELECT {DEVELOPER_COLUMNS} FROM developers WHERE developer_id = %s"
                        + (" FOR UPDATE" if for_update else ""), (developer_id,)).fetchone()


def developers(conn: Connection, developer_ids: Sequence[UUID], *, for_update: bool = False) -> list[Row]:
    return conn.execute(f"SELECT {DEVELOPER_COLUMNS} FROM developers WHERE developer_id = ANY(%s::uuid[]) "
                        "ORDER BY developer_id" + (" FOR UPDATE" if for_update else ""),
                        (list(developer_ids),)).fetchall()


def surviving_developer(conn: Connection, developer_id: UUID) -> UUID | None:
    """The end of ``developer_id``'s merged_into chain (the live developer its rows are with now)."""
    row = conn.execute(
        "WITH RECURSIVE chain(developer_id, merged_into, depth) AS ("
        " SELECT developer_id, merged_into, 0 FROM developers WHERE developer_id = %s"
        " UNION ALL SELECT d.developer_id, d.merged_into, c.depth + 1 FROM developers d"
        " JOIN chain c ON d.developer_id = c.merged_into WHERE c.depth < 1000)"
        " SELECT developer_id FROM chain WHERE merged_into IS NULL LIMIT 1", (developer_id,)).fetchone()
    return row["developer_id"] if row else None


def created_in_this_transaction(conn: Connection, developer_ids: Sequence[UUID]) -> set[UUID]:
    """Which of ``developer_ids`` this transaction inserted (their created_at default is the transaction's start;
    a developer of an earlier transaction is older)."""
    rows = conn.execute("SELECT developer_id FROM developers WHERE developer_id = ANY(%s::uuid[]) "
                        "AND created_at = transaction_timestamp()", (list(developer_ids),)).fetchall()
    return {r["developer_id"] for r in rows}


def insert_developer(conn: Connection, fields: dict[str, Any]) -> Row:
    """In a savepoint: a UniqueViolation on the primary e-mail (which the caller translates) leaves the
    transaction usable."""
    with conn.transaction():
        return fetch_one(conn.execute(
            "INSERT INTO developers (display_name, primary_email, org_id, tags, consent_analytics) "
            "VALUES (%(display_name)s, %(primary_email)s, %(org_id)s, %(tags)s, %(consent_analytics)s) "
            f"RETURNING {DEVELOPER_COLUMNS}", fields))


UPDATABLE_DEVELOPER_FIELDS = ("display_name", "primary_email", "org_id", "tags", "consent_analytics")


def update_developer(conn: Connection, developer_id: UUID, fields: dict[str, Any]) -> Row:
    """Set ``fields`` (a subset of UPDATABLE_DEVELOPER_FIELDS); in a savepoint like ``insert_developer``."""
    assert fields and set(fields) <= set(UPDATABLE_DEVELOPER_FIELDS), fields
    assignments = ", ".join(f"{name} = %({name})s" for name in fields)
    with conn.transaction():
        return fetch_one(conn.execute(
            f"UPDATE developers SET {assignments}, updated_at = now() WHERE developer_id = %(developer_id)s "
            f"RETURNING {DEVELOPER_COLUMNS}", {**fields, "developer_id": developer_id}))


# ---------------------------------------------------------------- the profile

def accounts_of(conn: Connection, developer_id: UUID) -> list[Row]:
    return conn.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE developer_id = %s "
                        "ORDER BY created_at, account_id", (developer_id,)).fetchall()


def identifiers_of(conn: Connection, developer_id: UUID) -> list[Row]:
    return conn.execute(f"SELECT {IDENTIFIER_COLUMNS} FROM developer_identifiers WHERE developer_id = %s "
                        "ORDER BY kind, value_normalized", (developer_id,)).fetchall()


def recent_activities(conn: Connection, developer_id: UUID, limit: int) -> list[Row]:
    return conn.execute(f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE developer_id = %s "
                        "ORDER BY occurred_at DESC, activity_id DESC LIMIT %s", (developer_id, limit)).fetchall()


def activity_counts(conn: Connection, developer_id: UUID) -> list[Row]:
    """(action, count, last) of the developer's activities, most frequent first."""
    return conn.execute("SELECT action, count(*) AS count, max(occurred_at) AS last_at FROM activities "
                        "WHERE developer_id = %s GROUP BY action ORDER BY count(*) DESC, action",
                        (developer_id,)).fetchall()


def open_suggestions_of(conn: Connection, developer_id: UUID, limit: int) -> list[Row]:
    return conn.execute(
        f"SELECT {SUGGESTION_COLUMNS} FROM developer_merge_suggestions WHERE status = 'open' "
        "AND (developer_id = %(dev)s OR other_developer_id = %(dev)s) "
        "ORDER BY confidence DESC, suggestion_id DESC LIMIT %(limit)s", {"dev": developer_id, "limit": limit}
    ).fetchall()


# ---------------------------------------------------------------- suggestions and merges

def suggestions_page(conn: Connection, *, min_confidence: float, developer_id: UUID | None,
                     after: tuple[Decimal, UUID] | None, limit: int) -> list[Row]:
    where = ["status = 'open'", "confidence >= %(min)s"]
    if developer_id is not None:
        where.append("(developer_id = %(dev)s OR other_developer_id = %(dev)s)")
    if after is not None:
        where.append("(confidence, suggestion_id) < (%(after_c)s, %(after_id)s)")
    return conn.execute(
        f"SELECT {SUGGESTION_COLUMNS} FROM developer_merge_suggestions WHERE {' AND '.join(where)} "
        "ORDER BY confidence DESC, suggestion_id DESC LIMIT %(limit)s",
        {"min": min_confidence, "dev": developer_id, "after_c": after[0] if after else None,
         "after_id": after[1] if after else None, "limit": limit + 1}).fetchall()


def suggestion(conn: Connection, suggestion_id: UUID) -> Row | None:
    return conn.execute(f"SELECT {SUGGESTION_COLUMNS} FROM developer_merge_suggestions WHERE suggestion_id = %s",
                        (suggestion_id,)).fetchone()


def merges_page(conn: Connection, *, developer_id: UUID | None, after: tuple[datetime, UUID] | None,
                limit: int) -> list[Row]:
    where = ["true"]
    if developer_id is not None:
        where.append("(into_developer_id = %(dev)s OR from_developer_id = %(dev)s)")
    if after is not None:
        where.append("(merged_at, merge_id) < (%(after_at)s, %(after_id)s)")
    return conn.execute(
        f"SELECT {MERGE_COLUMNS} FROM developer_merge_logs WHERE {' AND '.join(where)} "
        "ORDER BY merged_at DESC, merge_id DESC LIMIT %(limit)s",
        {"dev": developer_id, "after_at": after[0] if after else None, "after_id": after[1] if after else None,
         "limit": limit + 1}).fetchall()


def merge_log(conn: Connection, merge_id: UUID) -> Row | None:
    return conn.execute(f"SELECT {MERGE_COLUMNS} FROM developer_merge_logs WHERE merge_id = %s",
                        (merge_id,)).fetchone()


# ---------------------------------------------------------------- erasure

def merged_into_chain(conn: Connection, developer_id: UUID) -> list[UUID]:
    """``developer_id`` and every developer merged into it, directly or through others (the same person)."""
    rows = conn.execute(
        "WITH RECURSIVE merged(developer_id) AS (SELECT developer_id FROM developers WHERE developer_id = %s"
        " UNION SELECT d.developer_id FROM developers d JOIN merged m ON d.merged_into = m.developer_id)"
        " SELECT developer_id FROM merged", (developer_id,)).fetchall()
    return [r["developer_id"] for r in rows]


def erase_developers(conn: Connection, developer_ids: Sequence[UUID]) -> None:
    conn.execute("UPDATE developers SET display_name = NULL, primary_email = NULL, tags = '{}', "
                 "consent_analytics = false, erased_at = coalesce(erased_at, now()), updated_at = now() "
                 "WHERE developer_id = ANY(%s::uuid[])", (list(developer_ids),))


def erase_accounts(conn: Connection, developer_ids: Sequence[UUID]) -> int:
    """Everything an account says about the person goes; its provider stays (counts by provider), its external id
    becomes a tombstone, so the provider's id is not kept either (and no later event finds it)."""
    return conn.execute(
        "UPDATE accounts SET external_user_id = 'erased:' || account_id::text, handle = NULL, email = NULL, "
        "display_name = NULL, profile_url = NULL, avatar_url = NULL, attributes = '{}', match_keys = '{}', "
        "dedup_key = NULL, updated_at = now() WHERE developer_id = ANY(%s::uuid[])", (list(developer_ids),)).rowcount


def delete_identifiers(conn: Connection, developer_ids: Sequence[UUID]) -> int:
    return conn.execute("DELETE FROM developer_identifiers WHERE developer_id = ANY(%s::uuid[])",
                        (list(developer_ids),)).rowcount


def strip_activities(conn: Connection, developer_ids: Sequence[UUID], personal_keys: Sequence[str]) -> int:
    """Activities stay (action, time, resource, source: the aggregates); their metadata loses ``personal_keys``
    and the anonymous visitor id goes."""
    return conn.execute(
        "UPDATE activities SET metadata = metadata - %(keys)s::text[], anon_id = NULL "
        "WHERE developer_id = ANY(%(devs)s::uuid[]) AND (metadata ?| %(keys)s::text[] OR anon_id IS NOT NULL)",
        {"keys": list(personal_keys), "devs": list(developer_ids)}).rowcount


def redact_merge_records(conn: Connection, developer_ids: Sequence[UUID], evidence: list[dict[str, Any]]) -> None:
    """Evidence names e-mails and names: the erased developers' merge logs and decided suggestions keep the ids
    and decisions only; their open suggestions go."""
    params = {"devs": list(developer_ids), "evidence": Jsonb(evidence)}
    conn.execute("UPDATE developer_merge_logs SET evidence = %(evidence)s, "
                 "moved = moved #- '{into_before,display_name}' WHERE into_developer_id = ANY(%(devs)s::uuid[]) "
                 "OR from_developer_id = ANY(%(devs)s::uuid[])", params)
    conn.execute("DELETE FROM developer_merge_suggestions WHERE status = 'open' "
                 "AND (developer_id = ANY(%(devs)s::uuid[]) OR other_developer_id = ANY(%(devs)s::uuid[]))", params)
    conn.execute("UPDATE developer_merge_suggestions SET evidence = %(evidence)s, updated_at = now() "
                 "WHERE developer_id = ANY(%(devs)s::uuid[]) OR other_developer_id = ANY(%(devs)s::uuid[])", params)


# ---------------------------------------------------------------- organizations

def organizations_page(conn: Connection, *, like: str | None, after: tuple[datetime, UUID] | None,
                       limit: int) -> list[Row]:
    where = ["true"]
    if like is not None:
        where.append("(o.name ILIKE %(like)s OR o.domain_primary::text ILIKE %(like)s)")
    if after is not None:
        where.append("(o.created_at, o.org_id) < (%(after_at)s, %(after_id)s)")
    return conn.execute(
        f"SELECT {ORGANIZATION_COLUMNS} FROM organizations o WHERE {' AND '.join(where)} "
        "ORDER BY o.created_at DESC, o.org_id DESC LIMIT %(limit)s",
        {"like": like, "after_at": after[0] if after else None, "after_id": after[1] if after else None,
         "limit": limit + 1}).fetchall()


def organization(conn: Connection, org_id: UUID) -> Row | None:
    return conn.execute(f"SELECT {ORGANIZATION_COLUMNS} FROM organizations o WHERE o.org_id = %s",
                        (org_id,)).fetchone()


def insert_organization(conn: Connection, fields: dict[str, Any]) -> Row | None:
    """None when the tenant has an organization of that name."""
    row = conn.execute(
        "INSERT INTO organizations (name, domain_primary, attributes) VALUES (%(name)s, %(domain_primary)s, "
        "%(attributes)s) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING org_id",
        {**fields, "attributes": Jsonb(fields["attributes"])}).fetchone()
    return organization(conn, row["org_id"]) if row else None


UPDATABLE_ORGANIZATION_FIELDS = ("name", "domain_primary", "attributes")


def update_organization(conn: Connection, org_id: UUID, fields: dict[str, Any]) -> Row | None:
    """None when the organization is gone; a UniqueViolation on the name (in a savepoint) for the caller."""
    assert fields and set(fields) <= set(UPDATABLE_ORGANIZATION_FIELDS), fields
    assignments = ", ".join(f"{name} = %({name})s" for name in fields)
    values = {**fields, "org_id": org_id}
    if "attributes" in values:
        values["attributes"] = Jsonb(values["attributes"])
    with conn.transaction():
        row = conn.execute(f"UPDATE organizations SET {assignments}, updated_at = now() WHERE org_id = %(org_id)s "
                           "RETURNING org_id", values).fetchone()
    return organization(conn, org_id) if row else None


# ---------------------------------------------------------------- accounts

def accounts_page(conn: Connection, *, provider: str | None, developer_id: UUID | None, handle_prefix: str | None,
                  after: tuple[datetime, UUID] | None, limit: int) -> list[Row]:
    where = ["true"]
    if provider is not None:
        where.append("provider = %(provider)s")
    if developer_id is not None:
        where.append("developer_id = %(dev)s")
    if handle_prefix is not None:
        where.append("account_id IN (SELECT account_id FROM developer_search_terms WHERE term >= lower(%(handle)s) "
                     "AND term < lower(%(handle)s) || %(prefix_end)s AND account_id IS NOT NULL)")
    if after is not None:
        where.append("(created_at, account_id) < (%(after_at)s, %(after_id)s)")
    return conn.execute(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {' AND '.join(where)} "
        "ORDER BY created_at DESC, account_id DESC LIMIT %(limit)s",
        {"provider": provider, "dev": developer_id, "handle": handle_prefix, "prefix_end": PREFIX_END,
         "after_at": after[0] if after else None,
         "after_id": after[1] if after else None, "limit": limit + 1}).fetchall()


def account(conn: Connection, account_id: UUID) -> Row | None:
    return conn.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = %s", (account_id,)).fetchone()
