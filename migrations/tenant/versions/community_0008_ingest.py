"""Tenant DB, community branch: activity ingestion speed, large CSV uploads and stalled import jobs.

- ``activities``' primary key is ``(tenant_id, activity_id)``: the one-column key on ``activity_id`` beside
  ``UNIQUE (tenant_id, activity_id)`` was a second b-tree on the same ids that every insert wrote and no query
  needs (under row-level security every lookup by id also names the tenant, and ``activity_campaigns``
  references the composite key). One index fewer per activity written.
- The GIN index on ``activities.metadata`` uses ``jsonb_path_ops``: one entry per path and value instead of one
  per key and per value, so a smaller index that is cheaper to write; it serves containment (``metadata @>``),
  the only use a GIN index can have here (the code reads ``metadata->>'key'``, which no GIN index serves, and
  never tests key existence with ``?``). ``fastupdate`` stays on: inserts go to the pending list and are merged
  in bulk.
- ``activity_import_uploads``: presigned S3 uploads of CSV files above the API's body limit (the upload id, its
  object, expiry and maximum size, and the job created from it).
- ``activity_import_jobs`` gets ``UNIQUE (tenant_id, job_id)`` (an upload references its job with the tenant) and
  an index of the unfinished jobs by last progress, for the sweep that fails the stalled ones.

Revision ID: t0008_community
"""
from alembic import op

from funnel.platform.migration_helpers import TENANT_ID, drop_tables, tenant_table

TABLES = ("activity_import_uploads",)  # born with references that carry the tenant

revision = "t0008_community"
down_revision = "t0007_community"
branch_labels = None
depends_on = None

CAMPAIGN_REFERENCE = ("ALTER TABLE activity_campaigns ADD CONSTRAINT activity_campaigns_activity_id_fkey "
                      "FOREIGN KEY (tenant_id, activity_id) REFERENCES activities (tenant_id, activity_id) "
                      "ON DELETE CASCADE")


def upgrade() -> None:
    op.execute("ALTER TABLE activity_campaigns DROP CONSTRAINT activity_campaigns_activity_id_fkey")
    op.execute("ALTER TABLE activities DROP CONSTRAINT activities_pkey, "
               "DROP CONSTRAINT activities_tenant_id_activity_id_key")
    op.execute("ALTER TABLE activities ADD CONSTRAINT activities_pkey PRIMARY KEY (tenant_id, activity_id)")
    op.execute(CAMPAIGN_REFERENCE)
    op.execute("DROP INDEX idx_activities_metadata_gin")
    op.execute("CREATE INDEX idx_activities_metadata_gin ON activities USING GIN (metadata jsonb_path_ops) "
               "WITH (fastupdate = on)")

    op.execute("ALTER TABLE activity_import_jobs ADD CONSTRAINT activity_import_jobs_tenant_id_job_id_key "
               "UNIQUE (tenant_id, job_id)")
    op.execute("CREATE INDEX idx_activity_import_jobs_unfinished ON activity_import_jobs (tenant_id, updated_at) "
               "WHERE status IN ('queued', 'running')")
    op.execute(f"""
    CREATE TABLE activity_import_uploads (
        upload_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        {TENANT_ID},
        file_path text NOT NULL,
        declared_bytes bigint NOT NULL CHECK (declared_bytes > 0),
        max_bytes bigint NOT NULL CHECK (max_bytes > 0),
        expires_at timestamptz NOT NULL,
        job_id uuid,
        created_by uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, upload_id),
        CONSTRAINT activity_import_uploads_job_id_fkey FOREIGN KEY (tenant_id, job_id)
            REFERENCES activity_import_jobs (tenant_id, job_id) ON DELETE SET NULL (job_id),
        CONSTRAINT activity_import_uploads_created_by_fkey FOREIGN KEY (tenant_id, created_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by)
    )""")
    op.execute("CREATE INDEX idx_activity_import_uploads_expiry ON activity_import_uploads (tenant_id, expires_at) "
               "WHERE job_id IS NULL")
    tenant_table("activity_import_uploads")


def downgrade() -> None:
    drop_tables("activity_import_uploads")
    op.execute("DROP INDEX idx_activity_import_jobs_unfinished")
    op.execute("ALTER TABLE activity_import_jobs DROP CONSTRAINT activity_import_jobs_tenant_id_job_id_key")
    op.execute("DROP INDEX idx_activities_metadata_gin")
    op.execute("CREATE INDEX idx_activities_metadata_gin ON activities USING GIN (metadata)")
    op.execute("ALTER TABLE activity_campaigns DROP CONSTRAINT activity_campaigns_activity_id_fkey")
    op.execute("ALTER TABLE activities DROP CONSTRAINT activities_pkey")
    op.execute("ALTER TABLE activities ADD CONSTRAINT activities_pkey PRIMARY KEY (activity_id), "
               "ADD CONSTRAINT activities_tenant_id_activity_id_key UNIQUE (tenant_id, activity_id)")
    op.execute(CAMPAIGN_REFERENCE)
