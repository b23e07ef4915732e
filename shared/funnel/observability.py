"""The one place for Logger, Tracer and Metrics (Powertools).

Every log line carries the tenant id once the tenant context is known
(``bind_tenant``), and metrics get a ``tenant_id`` metadata entry.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "funnel"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="Funnel", service=SERVICE)


def bind_tenant(tenant_id: str | None, user_id: str | None = None) -> None:
    """Attach the tenant (and user) to every following log line, trace and metric."""
    if tenant_id is None:
        logger.remove_keys(["tenant_id", "user_id"])
        return
    logger.append_keys(tenant_id=tenant_id, user_id=user_id)
    try:
        tracer.put_annotation(key="tenant_id", value=tenant_id)
    except Exception:  # no active segment outside Lambda/X-Ray: annotation is best effort
        pass
    metrics.add_metadata(key="tenant_id", value=tenant_id)
