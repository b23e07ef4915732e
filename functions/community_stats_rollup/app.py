"""Scheduled every 5 minutes: the community stats (``developer_stats``, ``campaign_stats``) of every active tenant,
rolled up from the changes logged since the last rollup (a tenant's first rollup is a full recount), within this
invocation's time (the Lambda's timeout less a margin); a tenant not reached keeps its changes for the next run."""
from __future__ import annotations

import time

from funnel.community.stats import rollup_all
from funnel.observability import log_metrics, logger, tracer
from funnel.platform.tenants import active_tenant_ids

# What the function may use of its 300 s: the rollup in progress finishes (one transaction per tenant).
TIME_BUDGET_SECONDS = 240.0


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    return rollup_all(active_tenant_ids(), time.monotonic() + TIME_BUDGET_SECONDS)
