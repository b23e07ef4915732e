"""Tenant DB, outreach branch: a target's filled fields as a file (``fields_file``, the S3 key of the JSON the
API hands out as a signed link, beside its screenshots), and the indexes that page a large task's targets
(keyset over ``created_at, id`` within a task, all or of one status) and find a target's AI runs.

Revision ID: t0003_outreach
"""
from alembic import op

revision = "t0003_outreach"
down_revision = "t0002_outreach"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE task_targets ADD COLUMN fields_file text")
    op.execute("CREATE INDEX task_targets_task_page ON task_targets (task_id, created_at, id)")
    op.execute("CREATE INDEX task_targets_task_status_page ON task_targets (task_id, status, created_at, id)")
    op.execute("CREATE INDEX ai_runs_target ON ai_runs (task_target_id, created_at)")


def downgrade() -> None:
    op.execute("DROP INDEX ai_runs_target")
    op.execute("DROP INDEX task_targets_task_status_page")
    op.execute("DROP INDEX task_targets_task_page")
    op.execute("ALTER TABLE task_targets DROP COLUMN fields_file")
