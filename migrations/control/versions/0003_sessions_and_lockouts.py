"""Control DB: refresh-token families (rotation, logout, revocation) and sign-in windows that start at the
first counted attempt (so a lockout's remaining time is known).

``refresh_token_families``: one row per sign-in. Each refresh rotates ``current_jti``; a refresh token whose
jti is no longer current is a replay and revokes the family. Access tokens name their family, so revoking it
(logout, log out everywhere, disabling the user) ends them too. In the control DB, next to the login
directory, because a token is checked before its tenant's data is read.

``rate_limit_windows`` replaces ``rate_limit_counters`` (windows aligned to the epoch): one row per key whose
window starts at its first hit, counted by a single upsert.

Revision ID: c0003
"""
from alembic import op

from funnel.platform.migration_helpers import app_role

revision = "c0003"
down_revision = "c0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = app_role()
    op.execute("""
    CREATE TABLE refresh_token_families (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        current_jti text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        rotated_at timestamptz,
        expires_at timestamptz NOT NULL,
        revoked_at timestamptz,
        revoked_reason text CHECK (revoked_reason IN ('logout', 'logout_everywhere', 'reuse', 'user_disabled'))
    )""")
    op.execute("CREATE INDEX refresh_token_families_user ON refresh_token_families (tenant_id, user_id) "
               "WHERE revoked_at IS NULL")
    op.execute("CREATE INDEX refresh_token_families_expiry ON refresh_token_families (expires_at)")
    op.execute("""
    CREATE TABLE rate_limit_windows (
        key text PRIMARY KEY,
        window_start timestamptz NOT NULL,
        count integer NOT NULL
    )""")
    op.execute("DROP TABLE rate_limit_counters")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON refresh_token_families, rate_limit_windows TO {role}")


def downgrade() -> None:
    role = app_role()
    op.execute("""
    CREATE TABLE rate_limit_counters (
        key text NOT NULL,
        window_start timestamptz NOT NULL,
        count integer NOT NULL DEFAULT 0,
        PRIMARY KEY (key, window_start)
    )""")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_counters TO {role}")
    op.execute("DROP TABLE IF EXISTS rate_limit_windows")
    op.execute("DROP TABLE IF EXISTS refresh_token_families")
