"""Scheduled: archive expired notifications and queue deliveries that were never queued, in every tenant."""
from __future__ import annotations

from funnel.notifications.service import archive_expired, dispatch_pending
from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.platform.tenants import active_tenant_ids

# A PENDING row this old with no attempt was written in a transaction that could not queue it.
UNQUEUED_AFTER_SECONDS = 60


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    archived = queued = failed = 0
    for tenant_id in active_tenant_ids():
        bind_tenant(tenant_id)
        try:
            archived += archive_expired(tenant_id)
            queued += dispatch_pending(tenant_id, older_than_seconds=UNQUEUED_AFTER_SECONDS)
        except Exception:  # one broken tenant database must not stop the others
            failed += 1
            logger.exception("notification cleanup failed for a tenant")
    bind_tenant(None)
    return {"archived": archived, "queued": queued, "failed_tenants": failed}
