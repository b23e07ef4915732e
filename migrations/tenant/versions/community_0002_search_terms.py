"""Tenant DB, community branch: ``developer_search_terms``, the words developer search looks up by prefix.

Why not the trigram indexes of t0001_community: under row-level security PostgreSQL uses an index for a condition
only when its operator is LEAKPROOF (else the condition could see rows of another tenant before the policy drops
them). ``ILIKE`` / ``LIKE`` (texticlike), the trigram operators, array containment (``@>``, ``&&``) and citext's
``=`` are not, so for the application role every such search was a sequential scan of developers and accounts
(benchmarks/community_query_bench.py: 0.3-1.4 s at 20,000 developers). Text ``>=`` / ``<`` and ``=`` are leakproof:
a btree over ``(tenant_id, term)`` in the "C" collation answers a prefix as a range.

The terms are kept by statement-level triggers (one statement per batch, whatever writes the rows: identity
resolution, the API, an erasure): the words of a developer's display name and its primary e-mail; each account's
handle, e-mail, the words of its display name and the romaji readings identity stores in ``match_keys`` ("t:"
keys: 山田 is found as yamada). Lower case, NFKC; a term is at most 200 characters.

Revision ID: t0002_community
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

revision = "t0002_community"
down_revision = "t0001_community"
branch_labels = None
depends_on = None

TABLES = ("developer_search_terms",)  # born with references that carry the tenant

WORDS = """
CREATE FUNCTION community_search_terms(words text, whole text[]) RETURNS SETOF text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT DISTINCT left(term, 200) FROM (
        SELECT regexp_split_to_table(lower(normalize(coalesce(words, ''), NFKC)), '[[:space:],、・()<>"`/|]+')
        UNION ALL SELECT lower(normalize(value, NFKC)) FROM unnest(whole) AS value WHERE value IS NOT NULL
    ) AS found(term) WHERE term <> ''
$$"""

ACCOUNT_TERMS = """
    SELECT a.tenant_id, a.developer_id, a.account_id, t.term FROM {rows} a
    CROSS JOIN LATERAL community_search_terms(a.display_name, ARRAY[a.handle, ltrim(a.handle, '@'), a.email::text]
        || ARRAY(SELECT substr(k, 3) FROM unnest(a.match_keys) AS k WHERE left(k, 2) = 't:')) AS t(term)
    WHERE a.developer_id IS NOT NULL"""
DEVELOPER_TERMS = """
    SELECT d.tenant_id, d.developer_id, NULL::uuid, t.term FROM {rows} d
    CROSS JOIN LATERAL community_search_terms(d.display_name, ARRAY[d.primary_email::text]) AS t(term)"""
INSERT = "INSERT INTO developer_search_terms (tenant_id, developer_id, account_id, term)"

TRIGGERS = f"""
CREATE FUNCTION community_account_terms_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {INSERT} {ACCOUNT_TERMS.format(rows="inserted")};
    RETURN NULL;
END $$;
CREATE FUNCTION community_account_terms_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- one statement: the DELETE and the INSERT share a snapshot, so the DELETE cannot remove the new terms
    WITH changed AS (
        SELECT n.* FROM updated n JOIN previous o USING (account_id)
        WHERE (n.handle, n.display_name, n.email::text, n.match_keys, n.developer_id)
              IS DISTINCT FROM (o.handle, o.display_name, o.email::text, o.match_keys, o.developer_id)),
    dropped AS (DELETE FROM developer_search_terms s USING changed c WHERE s.account_id = c.account_id)
    {INSERT} {ACCOUNT_TERMS.format(rows="changed")};
    RETURN NULL;
END $$;
CREATE FUNCTION community_developer_terms_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {INSERT} {DEVELOPER_TERMS.format(rows="inserted")};
    RETURN NULL;
END $$;
CREATE FUNCTION community_developer_terms_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT n.* FROM updated n JOIN previous o USING (developer_id)
        WHERE (n.display_name, n.primary_email::text) IS DISTINCT FROM (o.display_name, o.primary_email::text)),
    dropped AS (DELETE FROM developer_search_terms s USING changed c
                WHERE s.developer_id = c.developer_id AND s.account_id IS NULL)
    {INSERT} {DEVELOPER_TERMS.format(rows="changed")};
    RETURN NULL;
END $$;
CREATE TRIGGER accounts_search_terms_inserted AFTER INSERT ON accounts REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION community_account_terms_inserted();
CREATE TRIGGER accounts_search_terms_updated AFTER UPDATE ON accounts
    REFERENCING OLD TABLE AS previous NEW TABLE AS updated
    FOR EACH STATEMENT EXECUTE FUNCTION community_account_terms_updated();
CREATE TRIGGER developers_search_terms_inserted AFTER INSERT ON developers REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION community_developer_terms_inserted();
CREATE TRIGGER developers_search_terms_updated AFTER UPDATE ON developers
    REFERENCING OLD TABLE AS previous NEW TABLE AS updated
    FOR EACH STATEMENT EXECUTE FUNCTION community_developer_terms_updated();
"""


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE developer_search_terms (
        {TENANT_ID},
        developer_id uuid NOT NULL,
        account_id uuid,
        term text COLLATE "C" NOT NULL CHECK (length(term) BETWEEN 1 AND 200),
        CONSTRAINT developer_search_terms_developer_id_fkey FOREIGN KEY (tenant_id, developer_id)
            REFERENCES developers (tenant_id, developer_id) ON DELETE CASCADE,
        CONSTRAINT developer_search_terms_account_id_fkey FOREIGN KEY (tenant_id, account_id)
            REFERENCES accounts (tenant_id, account_id) ON DELETE CASCADE
    )""")
    op.execute("CREATE INDEX idx_developer_search_terms_term ON developer_search_terms (tenant_id, term, developer_id)")
    op.execute("CREATE INDEX idx_developer_search_terms_developer ON developer_search_terms (tenant_id, developer_id)")
    op.execute("CREATE INDEX idx_developer_search_terms_account ON developer_search_terms (tenant_id, account_id)")
    op.execute(WORDS)
    op.execute(TRIGGERS)
    # Rows written before this revision: FORCE ROW LEVEL SECURITY binds the owner too and a migration has no
    # app.tenant_id, so it is lifted for the copy inside this transaction and put back.
    for table in ("developers", "accounts"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"{INSERT} {ACCOUNT_TERMS.format(rows='accounts')}")
    op.execute(f"{INSERT} {DEVELOPER_TERMS.format(rows='developers')}")
    for table in ("developers", "accounts"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    tenant_table("developer_search_terms")


def downgrade() -> None:
    for trigger, table in (("accounts_search_terms_inserted", "accounts"),
                           ("accounts_search_terms_updated", "accounts"),
                           ("developers_search_terms_inserted", "developers"),
                           ("developers_search_terms_updated", "developers")):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for function in ("community_account_terms_inserted", "community_account_terms_updated",
                     "community_developer_terms_inserted", "community_developer_terms_updated"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    drop_tables(*TABLES)
    op.execute("DROP FUNCTION IF EXISTS community_search_terms(text, text[])")
