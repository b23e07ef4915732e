"""Scheduled every 5 minutes: queue the campaigns scheduled for now and the reminders that are due, in every
tenant (the email sender sends them, within the tenant's sending limits), and mark the campaigns with nothing left
to send as sent."""
from __future__ import annotations

from funnel.email.completion import complete_sent_campaigns
from funnel.email.reminders import send_due_reminders
from funnel.email.sending import send_scheduled
from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.platform.tenants import active_tenant_ids


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    reminders = queued = completed = failed = 0
    for tenant_id in active_tenant_ids():
        bind_tenant(tenant_id)
        try:
            queued += send_scheduled(tenant_id)
            reminders += send_due_reminders(tenant_id)
            completed += complete_sent_campaigns(tenant_id)
        except Exception:  # one broken tenant database must not stop the others
            failed += 1
            logger.exception("reminders failed for a tenant")
    bind_tenant(None)
    return {"reminders_queued": reminders, "scheduled_messages_queued": queued,
            "campaigns_completed": completed, "failed_tenants": failed}
