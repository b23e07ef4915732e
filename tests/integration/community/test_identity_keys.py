"""``account_match_keys`` (t0005_community), the btree rows identity looks merge candidates up by (real PostgreSQL,
pooled tenants): a pooled tenant's lookup never reaches a neighbour's account that carries the same key, the
lookup is an index scan under row-level security, and the rows follow every write of accounts (resolution, merge,
unmerge, erasure, an account's or a developer's delete) with none left stale."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from funnel import db
from funnel.community import developers, identity, matching
from funnel.community import store_identity as store
from funnel.community.identity import AccountIn
from funnel.db import Connection
from tests.integration.community.conftest import COMMUNITY_POOL
from tests.support.tenants import new_tenant


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _blocking_keys(account: AccountIn) -> list[str]:
    return matching.blocking_keys(matching.match_keys(identity.profile_of(account)))


def _stale_rows(conn: Connection) -> set[tuple[object, ...]]:
    """Key rows that differ from the accounts' own keys (either way): empty when the table follows accounts."""
    kept = {tuple(r.values()) for r in conn.execute(
        "SELECT account_id, developer_id, match_key FROM account_match_keys").fetchall()}
    wanted = {tuple(r.values()) for r in conn.execute(
        "SELECT a.account_id, a.developer_id, k.key FROM accounts a CROSS JOIN LATERAL unnest(a.match_keys) k(key) "
        "WHERE a.developer_id IS NOT NULL AND left(k.key, 2) <> 't:'").fetchall()}
    return kept ^ wanted


def _holders(tenant_conn, keys: list[str]) -> set[uuid.UUID]:
    with tenant_conn() as conn:
        return {d for row in store.developers_by_key(conn, keys, identity.COMMON_KEY) for d in row["developers"]}


def test_a_pooled_tenants_lookup_never_returns_a_neighbours_account_with_the_same_key(resolve, tenant_conn):
    tag = _uid()
    mine = AccountIn("github", f"iso-{tag}", handle=f"kazuhisa{tag}", display_name=f"Kazuhisa Wakamatsu{tag}")
    keys = _blocking_keys(mine)
    assert any(k.startswith("h:") for k in keys)
    neighbour = new_tenant(pool=COMMUNITY_POOL)
    with db.tenant_transaction(neighbour.tenant_id) as conn:  # the same person's key, another tenant's account
        theirs, = identity.resolve_accounts(conn, [AccountIn("gitlab", f"iso-{tag}", handle=f"kazuhisa{tag}",
                                                             display_name=f"Kazuhisa Wakamatsu{tag}")])
    own, = resolve(mine)

    assert _holders(tenant_conn, keys) == {own.developer_id}
    with db.tenant_transaction(neighbour.tenant_id) as conn:
        assert {d for row in store.developers_by_key(conn, keys, identity.COMMON_KEY)
                for d in row["developers"]} == {theirs.developer_id}
    with tenant_conn() as conn:
        rows = conn.execute("SELECT DISTINCT account_id FROM account_match_keys WHERE match_key = ANY(%s)",
                            (keys,)).fetchall()
        assert [r["account_id"] for r in rows] == [own.account_id]
        assert store.open_suggestions(conn, 0.0, 10, developer_id=own.developer_id) == []
    # a row naming the neighbour's account is refused: the reference carries the tenant
    with pytest.raises(psycopg.errors.ForeignKeyViolation), tenant_conn() as conn:
        conn.execute("INSERT INTO account_match_keys (match_key, account_id, developer_id) VALUES (%s, %s, %s)",
                     (keys[0], theirs.account_id, theirs.developer_id))


def test_the_lookup_is_an_index_scan_under_row_level_security(tenant_conn):
    # ``enable_seqscan = off`` only makes a usable index preferred: a condition whose operator is not leakproof
    # (the array overlap of accounts.match_keys) would still be a sequential scan
    with tenant_conn() as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
            "EXPLAIN SELECT developer_id FROM account_match_keys WHERE match_key = %s", ("h:x",)).fetchall())
    assert "idx_account_match_keys_key" in plan and "Seq Scan" not in plan, plan


def test_the_key_rows_follow_merges_unmerges_erasure_and_deletes(resolve, tenant_conn, community_tenant):
    tag = _uid()
    first, second = resolve(AccountIn("github", f"m1-{tag}", handle=f"keikot{tag}", display_name="Keiko Tanaka"),
                            AccountIn("discord", f"m2-{tag}", handle=f"keikot{tag}", display_name="Keiko Tanaka"))
    assert first.developer_id != second.developer_id
    keys = _blocking_keys(AccountIn("github", "x", handle=f"keikot{tag}"))
    with tenant_conn() as conn:
        assert _stale_rows(conn) == set()
        log = identity.merge(conn, first.developer_id, second.developer_id, reason="test", evidence=[],
                             merged_by=None)
        assert _stale_rows(conn) == set()
    assert _holders(tenant_conn, keys) == {first.developer_id}
    with tenant_conn() as conn:
        identity.unmerge(conn, log["merge_id"], by=None)
        assert _stale_rows(conn) == set()
    assert _holders(tenant_conn, keys) == {first.developer_id, second.developer_id}

    with tenant_conn() as conn:
        developers.erase(conn, community_tenant.owner, second.developer_id)
        assert _stale_rows(conn) == set()
        assert conn.execute("SELECT count(*) AS n FROM account_match_keys WHERE account_id = %s",
                            (second.account_id,)).fetchone()["n"] == 0
    assert _holders(tenant_conn, keys) == {first.developer_id}

    third, = resolve(AccountIn("x", f"m3-{tag}", handle=f"keikot{tag}", display_name="Keiko Tanaka"))
    with tenant_conn() as conn:
        conn.execute("DELETE FROM accounts WHERE account_id = %s", (first.account_id,))
        # a developer's delete sets its accounts' developer_id NULL: their keys name no developer any more
        conn.execute("DELETE FROM developers WHERE developer_id = %s", (third.developer_id,))
        assert _stale_rows(conn) == set()
    assert _holders(tenant_conn, keys) == set()
