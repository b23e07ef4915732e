"""Scheduled every 5 minutes: send the campaigns scheduled for now and the reminders that are due, in every tenant."""
from __future__ import annotations

from funnel.email.campaigns import send_due_reminders, send_scheduled
from funnel.observability import bind_tenant, logger
from funnel.platform.tenants import active_tenant_ids


@logger.inject_lambda_context
def handler(event, context):
    sent = queued = failed = 0
    for tenant_id in active_tenant_ids():
        bind_tenant(tenant_id)
        try:
            queued += send_scheduled(tenant_id)
            sent += send_due_reminders(tenant_id)
        except Exception:  # one broken tenant database must not stop the others
            failed += 1
            logger.exception("reminders failed for a tenant")
    bind_tenant(None)
    return {"sent": sent, "scheduled_messages_queued": queued, "failed_tenants": failed}
