"""Operations on the databases, inside the VPC (the only place they can be reached from): CloudFormation's
custom resource on every deploy (``funnel.platform.operations_deploy``: migrations, answered to its ResponseURL),
and the typed operations the API's sign-up and the operator's ``funnel ... --stack`` invoke
(``funnel.platform.operations``: provision, migrate or delete one tenant, migrate all, the server registry)."""
from __future__ import annotations

import time

from funnel.observability import log_metrics, logger, tracer
from funnel.platform import operations, operations_deploy


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    def remaining_seconds() -> float:
        return context.get_remaining_time_in_millis() / 1000

    if operations_deploy.is_custom_resource_request(event):
        return operations_deploy.handle(event, remaining_seconds)
    # a migration of every tenant answers before the function's timeout, naming what it did not reach
    deadline = time.monotonic() + remaining_seconds() - operations_deploy.ANSWER_MARGIN_SECONDS
    return operations.run(event, deadline=deadline).model_dump(mode="json")
