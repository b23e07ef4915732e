"""Scheduled hourly: the pull plugins (GitHub REST: stargazers and issues of the configured repositories) of every
active tenant, each from the cursor its last run left, within this invocation's time (the Lambda's timeout less a
margin); a plugin not reached, rate-limited or still running waits for the next hour."""
from __future__ import annotations

import time

from funnel.community.plugin_runs import pull_due
from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.platform.tenants import active_tenant_ids

# What the function may use of its 300 s: the runs in progress finish their page and record their outcome.
TIME_BUDGET_SECONDS = 240.0


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    deadline = time.monotonic() + TIME_BUDGET_SECONDS
    runs = skipped = failed = 0
    for tenant_id in active_tenant_ids():
        bind_tenant(tenant_id)
        try:
            done = pull_due(tenant_id, deadline)
            runs += done["runs"]
            skipped += done["skipped"]
        except Exception:  # one broken tenant database must not stop the others
            failed += 1
            logger.exception("plugin pulls failed for a tenant")
    bind_tenant(None)
    return {"runs": runs, "skipped_plugins": skipped, "failed_tenants": failed}
