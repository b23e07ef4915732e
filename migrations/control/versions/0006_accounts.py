"""Control DB: self-service accounts (issue #18).

- ``tenants.email_verified_at``: when the workspace's owner proved their e-mail address (the signed link of
  sign-up). An unverified workspace signs in and configures but sends nothing (forms, e-mails, publishing).
  Workspaces that existed before (created by an operator, who vouches for them) count as verified.
- ``tenants.deletion_requested_at`` / ``deletion_due_at`` / ``deletion_requested_by``: a deletion the owner
  asked for, carried out by the purge sweep once ``deletion_due_at`` has passed; cancelling clears them.
- ``account_tokens``: the single-use record of every signed link mailed to a user (e-mail verification,
  password reset), by the token's ``jti``: a link works once and until ``expires_at``.
- ``oidc_logins``: a sign-in with an OpenID provider under way, by the SHA-256 of its ``state``: the nonce and
  PKCE verifier it was started with, used once, within minutes.

Revision ID: c0006
"""
from alembic import op

from funnel.platform.migration_helpers import app_role

revision = "c0006"
down_revision = "c0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = app_role()
    op.execute("ALTER TABLE tenants ADD COLUMN email_verified_at timestamptz, "
               "ADD COLUMN deletion_requested_at timestamptz, ADD COLUMN deletion_due_at timestamptz, "
               "ADD COLUMN deletion_requested_by uuid")
    op.execute("UPDATE tenants SET email_verified_at = created_at")
    op.execute("CREATE INDEX tenants_deletion_due ON tenants (deletion_due_at) WHERE deletion_due_at IS NOT NULL")
    op.execute("""
    CREATE TABLE account_tokens (
        jti text PRIMARY KEY,
        purpose text NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX account_tokens_user ON account_tokens (tenant_id, user_id, purpose)")
    op.execute("CREATE INDEX account_tokens_expiry ON account_tokens (expires_at)")
    op.execute("""
    CREATE TABLE oidc_logins (
        state_hash text PRIMARY KEY,
        provider text NOT NULL,
        nonce text NOT NULL,
        code_verifier text NOT NULL,
        redirect_uri text NOT NULL,
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX oidc_logins_expiry ON oidc_logins (expires_at)")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON account_tokens, oidc_logins TO {role}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS oidc_logins")
    op.execute("DROP TABLE IF EXISTS account_tokens")
    op.execute("DROP INDEX IF EXISTS tenants_deletion_due")
    op.execute("ALTER TABLE tenants DROP COLUMN email_verified_at, DROP COLUMN deletion_requested_at, "
               "DROP COLUMN deletion_due_at, DROP COLUMN deletion_requested_by")
