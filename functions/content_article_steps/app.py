"""Article pipeline tasks: one handler, dispatching on the state's ``step``."""
from __future__ import annotations

from funnel.content.pipeline import run_step
from funnel.observability import bind_tenant, log_metrics, tracer


@tracer.capture_lambda_handler
@log_metrics
def handler(event, context):
    bind_tenant(str(event["tenant_id"]) if event.get("tenant_id") else None)
    try:
        return run_step(event)
    except Exception as exc:
        short = _short(exc)
    # Raised from this frame: Step Functions matches the class name, and the Cause stays small (no deep trace).
    raise short


def _short(exc: Exception) -> Exception:
    try:
        copy = type(exc)(*exc.args)
    except Exception:
        return exc
    copy.__cause__ = None
    copy.__suppress_context__ = True
    return copy
