"""Scheduled every 5 minutes: queue the campaigns scheduled for now and the reminders that are due, in every
tenant (the email sender sends them, within the tenant's sending limits), end the campaigns with nothing left
to send (sent, partial or failed), and end the jobs that are stuck (runs without progress, contact imports that
never finished, campaigns whose messages no sender takes up any more) as failed, telling their owners."""
from __future__ import annotations

from funnel import db
from funnel.email.completion import complete_finished_campaigns, fail_stalled_campaigns
from funnel.email.reminders import send_due_reminders
from funnel.email.sending import send_scheduled
from funnel.notifications.service import notify
from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.outreach.contacts import fail_stuck_import_jobs
from funnel.platform import runs
from funnel.platform.tenants import active_tenant_ids


def fail_stuck_runs(tenant_id: str) -> int:
    """End the tenant's stuck runs (``funnel.platform.runs.fail_stuck_runs`` says which) and tell whoever started
    each one why."""
    with db.tenant_transaction(tenant_id) as conn:
        stuck = runs.fail_stuck_runs(conn)
        for run in stuck:
            if run["created_by"]:
                notify(tenant_id, recipient_user_ids=[str(run["created_by"])], category="platform.run",
                       title=f"Run {run['kind']} failed", body=run["error_message"], priority="HIGH",
                       related_entity_type="run", related_entity_id=str(run["id"]), conn=conn)
    return len(stuck)


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    reminders = queued = completed = stuck = failed = 0
    for tenant_id in active_tenant_ids():
        bind_tenant(tenant_id)
        try:
            queued += send_scheduled(tenant_id)
            reminders += send_due_reminders(tenant_id)
            completed += complete_finished_campaigns(tenant_id)
            stuck += fail_stuck_runs(tenant_id) + fail_stuck_import_jobs(tenant_id) + fail_stalled_campaigns(tenant_id)
        except Exception:  # one broken tenant database must not stop the others
            failed += 1
            logger.exception("reminders failed for a tenant")
    bind_tenant(None)
    return {"reminders_queued": reminders, "scheduled_messages_queued": queued,
            "campaigns_completed": completed, "stuck_jobs_failed": stuck, "failed_tenants": failed}
