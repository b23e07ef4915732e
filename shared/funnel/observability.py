"""The one place for Logger, Tracer and Metrics (Powertools).

Every log line carries the tenant id once the tenant context is known
(``bind_tenant``), and metrics get a ``tenant_id`` metadata entry. The tracer
is created on first use: the X-Ray SDK costs ~200 ms of cold start, which
functions that never open a subsegment should not pay.
"""
from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools import Logger, Metrics

SERVICE = "funnel"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Funnel", service=SERVICE)


@lru_cache(maxsize=1)
def tracer():
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


def bind_tenant(tenant_id: str | None, user_id: str | None = None) -> None:
    """Attach the tenant (and user) to every following log line, trace and metric of this request.

    The keys live in the logger's context-local keys, not its global ones: an API request's tenant ends with
    the request (Mangum runs each in its own task), and where several requests share a process (the local
    runtime's threads) each line carries its own request's tenant, never a neighbour's."""
    if tenant_id is None:
        logger.thread_safe_remove_keys(["tenant_id", "user_id"])
        return
    logger.thread_safe_append_keys(tenant_id=tenant_id, user_id=user_id)
    if tracer.cache_info().currsize:
        try:
            tracer().put_annotation(key="tenant_id", value=tenant_id)
        except Exception:  # no active segment outside Lambda/X-Ray: annotation is best effort
            pass
    metrics.add_metadata(key="tenant_id", value=tenant_id)
