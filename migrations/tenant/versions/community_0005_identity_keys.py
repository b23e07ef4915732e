"""Tenant DB, community branch: ``account_match_keys``, the blocking keys identity looks candidates up by.

Why not the GIN index on ``accounts.match_keys`` (t0001_community): under row-level security PostgreSQL uses an
index for a condition only when its operator is LEAKPROOF, and array overlap (``&&``) is not, so for the
application role (pooled and silo tenants alike: RLS is forced on both) every candidate lookup of a merge
suggestion was a pass over all the tenant's accounts, and resolution slowed down with every account stored
(benchmarks/community_identity_bench.py: 401 accounts/s at 20,000 accounts, 66/s at 100,000). Text ``=`` is
leakproof: one row per (account, key) with a btree over ``(tenant_id, match_key, developer_id)`` answers "which
developers carry this key" with an index probe per key. The GIN index is dropped: nothing can use it.

Only the blocking keys are kept (``n:``, ``c:``, ``h:``; the ``t:`` name tokens serve search, in
``developer_search_terms``), and only for accounts that belong to a developer. ``developer_id`` is the account's,
copied so the lookup needs no join; it follows the account because statement-level triggers keep the rows (one
statement per batch, whatever writes accounts: identity resolution, a merge or unmerge moving accounts, an erasure
emptying ``match_keys``, a developer's delete setting ``developer_id`` NULL). An account's delete cascades. It
has no reference to developers of its own: the account's reference is the one that holds, and a second check
on every key row would double what a batch of new accounts costs.

Also ``idx_merge_suggestions_rejected``: the "not the same person" pairs, which every refresh of suggestions
checks its candidate pairs against, without a pass over the open suggestions.

Revision ID: t0005_community
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0005_community"
down_revision = "t0004_community"
branch_labels = None
depends_on = None

TABLES = ("account_match_keys",)  # born with references that carry the tenant

KEY_ROWS = """
    SELECT a.tenant_id, k.key, a.account_id, a.developer_id FROM {rows} a
    CROSS JOIN LATERAL (SELECT DISTINCT key FROM unnest(a.match_keys) AS u(key)) AS k
    WHERE a.developer_id IS NOT NULL AND left(k.key, 2) <> 't:' AND length(k.key) BETWEEN 1 AND 500"""
CHANGED = """(SELECT n.* FROM updated n JOIN previous o USING (account_id)
    WHERE (n.match_keys, n.developer_id) IS DISTINCT FROM (o.match_keys, o.developer_id))"""
INSERT = "INSERT INTO account_match_keys (tenant_id, match_key, account_id, developer_id)"

TRIGGERS = f"""
CREATE FUNCTION community_account_keys_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {INSERT} {KEY_ROWS.format(rows="inserted")};
    RETURN NULL;
END $$;
CREATE FUNCTION community_account_keys_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- the accounts whose keys or developer changed lose their rows, then get the new ones: two statements, in
    -- that order (the primary key would refuse an unchanged key inserted before its old row is deleted)
    DELETE FROM account_match_keys m USING {CHANGED} c WHERE m.account_id = c.account_id;
    {INSERT} {KEY_ROWS.format(rows=CHANGED)};
    RETURN NULL;
END $$;
CREATE TRIGGER accounts_match_keys_inserted AFTER INSERT ON accounts REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION community_account_keys_inserted();
CREATE TRIGGER accounts_match_keys_updated AFTER UPDATE ON accounts
    REFERENCING OLD TABLE AS previous NEW TABLE AS updated
    FOR EACH STATEMENT EXECUTE FUNCTION community_account_keys_updated();
"""


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE account_match_keys (
        {TENANT_ID},
        match_key text COLLATE "C" NOT NULL CHECK (length(match_key) BETWEEN 1 AND 500),
        account_id uuid NOT NULL,
        developer_id uuid NOT NULL,
        PRIMARY KEY (tenant_id, account_id, match_key),
        CONSTRAINT account_match_keys_account_id_fkey FOREIGN KEY (tenant_id, account_id)
            REFERENCES accounts (tenant_id, account_id) ON DELETE CASCADE
    )""")
    op.execute("CREATE INDEX idx_account_match_keys_key ON account_match_keys (tenant_id, match_key, developer_id)")
    op.execute(TRIGGERS)
    # Accounts written before this revision: FORCE ROW LEVEL SECURITY binds the owner too and a migration has no
    # app.tenant_id, so it is lifted for the copy inside this transaction and put back.
    op.execute("ALTER TABLE accounts NO FORCE ROW LEVEL SECURITY")
    op.execute(f"{INSERT} {KEY_ROWS.format(rows='accounts')}")
    op.execute("ALTER TABLE accounts FORCE ROW LEVEL SECURITY")
    tenant_table("account_match_keys")
    op.execute("DROP INDEX idx_accounts_match_keys")
    # "not the same person" decisions among a batch's candidate pairs: a few rows, found without reading the
    # open suggestions (each resolve batch asks for tens of thousands of pairs)
    op.execute("CREATE INDEX idx_merge_suggestions_rejected ON developer_merge_suggestions "
               "(tenant_id, developer_id, other_developer_id) WHERE status = 'rejected'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS idx_merge_suggestions_rejected")
    op.execute("CREATE INDEX IF NOT EXISTS idx_accounts_match_keys ON accounts USING GIN (match_keys)")
    for trigger in ("accounts_match_keys_inserted", "accounts_match_keys_updated"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON accounts")
    for function in ("community_account_keys_inserted", "community_account_keys_updated"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    drop_tables(*TABLES)
