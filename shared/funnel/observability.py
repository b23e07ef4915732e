"""The one place for Logger, Tracer and Metrics (Powertools).

**Logs**: every line carries the tenant id once the tenant context is known (``bind_tenant``).

**Metrics** (CloudWatch EMF: JSON lines on stdout that CloudWatch turns into metrics): namespace from
``POWERTOOLS_METRICS_NAMESPACE`` ("Funnel" where it is unset), a ``service`` dimension from
``POWERTOOLS_SERVICE_NAME``. Service code counts a business event where it happens, through ``count`` (or a
named helper such as ``llm_usage``); every handler flushes what was counted once, at its end (``@log_metrics``).
The tenant is a metadata property of each EMF record (``tenant_id``: searchable in Logs Insights), never a
dimension: every distinct dimension value is its own CloudWatch metric, so a tenant dimension would multiply
the metric count (and its cost) by the number of tenants. One EMF record holds one tenant's values: counting
for another tenant first flushes what the previous one counted.

**Traces** (X-Ray; ``Tracing: Active`` in template.yaml): ``@tracer.capture_lambda_handler`` on every handler,
``with tracer.subsegment("wordpress"):`` around each external call. Powertools' Tracer is made on first use:
where Powertools finds tracing disabled (``POWERTOOLS_TRACE_DISABLED``, or outside Lambda: the local runtime
and tests) it gets a provider that records nothing, so the X-Ray SDK (~300 ms of import and patching) is
never imported there; in Lambda it is the X-Ray SDK's recorder with its libraries patched.
"""
from __future__ import annotations

import functools
import threading
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer  # the Tracer class only: the X-Ray SDK is lazy
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

NAMESPACE = "Funnel"

logger = Logger()  # service: POWERTOOLS_SERVICE_NAME
metrics = Metrics()  # namespace: POWERTOOLS_METRICS_NAMESPACE; service dimension: POWERTOOLS_SERVICE_NAME
# Without a namespace every flush would raise (and fail the handler): a process started without the
# template's environment (a CLI, a unit test) still gets the product's namespace.
metrics.provider.namespace = metrics.provider.namespace or NAMESPACE
_metrics_lock = threading.Lock()  # the local runtime runs handlers on several threads of one process
# The tenant of this request (thread, asyncio task), for code that is not told it (funnel.platform.llm).
_bound_tenant: ContextVar[str | None] = ContextVar("funnel_bound_tenant", default=None)


def bound_tenant() -> str | None:
    """The tenant ``bind_tenant`` bound for this request, if any."""
    return _bound_tenant.get()


def count(name: str, value: float = 1, *, tenant_id: str | None, unit: str = "Count") -> None:
    """Add ``value`` to the metric ``name`` for ``tenant_id``; the handler's ``@log_metrics`` flushes it."""
    with _metrics_lock:
        if metrics.metric_set and metrics.metadata_set.get("tenant_id") != tenant_id:
            metrics.flush_metrics()  # one record, one tenant
        if tenant_id is None:
            metrics.metadata_set.pop("tenant_id", None)
        else:
            metrics.add_metadata(key="tenant_id", value=str(tenant_id))
        metrics.add_metric(name=name, unit=unit, value=value)


def emit(values: dict[str, tuple[float, str]], *, tenant_id: str | None, dimensions: dict[str, str],
         metadata: dict | None = None) -> None:
    """Write one EMF record now, with its own ``dimensions`` (besides ``service``): ``{name: (value, unit)}``.

    Only for dimensions with a small fixed set of values (an LLM step), never a tenant or an id."""
    provider = AmazonCloudWatchEMFProvider(namespace=metrics.provider.namespace, service=metrics.provider.service,
                                           metric_set={}, dimension_set={}, metadata_set={})
    for name, (value, unit) in values.items():
        provider.add_metric(name=name, unit=unit, value=value)
    for key, dimension in dimensions.items():
        provider.add_dimension(name=key, value=dimension)
    for key, property_value in {**(metadata or {}),
                                **({"tenant_id": str(tenant_id)} if tenant_id is not None else {})}.items():
        provider.add_metadata(key=key, value=property_value)
    provider.flush_metrics()


def llm_usage(step: str, model: str, *, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
    """Tokens and cost of one model call, per step (``step`` is a dimension: the registry's handful of steps),
    for the bound tenant; the model is a property."""
    emit({"LlmInputTokens": (input_tokens, "Count"), "LlmOutputTokens": (output_tokens, "Count"),
          "LlmCostUsd": (cost_usd, "None")}, tenant_id=bound_tenant(), dimensions={"step": step},
         metadata={"model": model})


def flush_metrics() -> None:
    """Write what was counted (nothing when nothing was)."""
    with _metrics_lock:
        if metrics.metric_set:
            metrics.flush_metrics()


def log_metrics(handler: Callable) -> Callable:
    """Powertools' ``metrics.log_metrics`` for Funnel's handlers: flush at the end of every invocation, raised or
    not, under the same lock as ``count`` and without a warning for an invocation that counted nothing."""
    @functools.wraps(handler)
    def flushing(event, context):
        try:
            return handler(event, context)
        finally:
            flush_metrics()

    return flushing


def reset() -> None:
    """Read Powertools' environment again (service, namespace, tracing): for a host that sets it after this module
    was imported (the local runtime sets the template's environment when it starts)."""
    fresh = AmazonCloudWatchEMFProvider()  # Powertools reads POWERTOOLS_METRICS_NAMESPACE and _SERVICE_NAME
    with _metrics_lock:
        metrics.provider.namespace = fresh.namespace or NAMESPACE
        metrics.provider.service = fresh.service
    if fresh.service:
        logger.service = fresh.service
        logger.append_keys(service=fresh.service)
    tracer.use(None)


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None): ...
    def add_subsegment(self, subsegment: Any): ...
    def remove_subsegment(self, subsegment: Any): ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: list, remote: bool = False): ...


class _NoTracing(BaseProvider):
    """The provider where tracing is disabled: records nothing, imports nothing."""

    @contextmanager
    def in_subsegment(self, name=None, **kwargs):
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name=None, **kwargs):
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules) -> None: ...
    def patch_all(self) -> None: ...


class LazyTracer:
    """Powertools' Tracer, made on first use (see the module docstring)."""

    def __init__(self) -> None:
        self._tracer: Tracer | None = None
        self._lock = threading.Lock()

    @property
    def powertools(self) -> Tracer:
        if self._tracer is None:
            with self._lock:
                if self._tracer is None:
                    # Powertools' own test (POWERTOOLS_TRACE_DISABLED, or not in Lambda), read by Powertools.
                    if Tracer._is_tracer_disabled():
                        self._tracer = Tracer(disabled=True, auto_patch=False, provider=_NoTracing())
                    else:
                        self._tracer = Tracer()
        return self._tracer

    def make(self) -> Tracer:
        """Make the tracer now (in init, where a snapshot keeps it) rather than on first use."""
        return self.powertools

    @property
    def made(self) -> bool:
        return self._tracer is not None

    def use(self, tracer: Tracer | None) -> None:
        """Replace the tracer (tests: one whose provider records); None: make it again on next use."""
        self._tracer = tracer

    def capture_lambda_handler(self, handler: Callable) -> Callable:
        """``Tracer.capture_lambda_handler`` (a ``## <handler>`` subsegment, ColdStart and Service annotations,
        errors recorded), with the tracer made on the first call. Responses are not recorded: they hold tokens
        and personal data."""
        wrapped: list = [None, None]  # the tracer it was made with, the wrapped handler

        @functools.wraps(handler)
        def traced(event, context):
            tracer = self.powertools
            if wrapped[0] is not tracer:
                wrapped[:] = [tracer, tracer.capture_lambda_handler(handler, capture_response=False)]
            return wrapped[1](event, context)

        return traced

    @contextmanager
    def subsegment(self, name: str) -> Iterator[BaseSegment]:
        """A ``## <name>`` subsegment around an external call (its time, and its exception if it raises)."""
        with self.powertools.provider.in_subsegment(name=f"## {name}") as segment:
            yield segment


tracer = LazyTracer()


def bind_tenant(tenant_id: str | None, user_id: str | None = None) -> None:
    """Attach the tenant (and user) to every following log line and trace of this request (metrics get it from
    ``count(..., tenant_id=...)``).

    The keys live in the logger's context-local keys, not its global ones: an API request's tenant ends with
    the request (Mangum runs each in its own task), and where several requests share a process (the local
    runtime's threads) each line carries its own request's tenant, never a neighbour's."""
    _bound_tenant.set(None if tenant_id is None else str(tenant_id))
    if tenant_id is None:
        logger.thread_safe_remove_keys(["tenant_id", "user_id"])
        return
    logger.thread_safe_append_keys(tenant_id=tenant_id, user_id=user_id)
    if tracer.made:
        try:
            tracer.powertools.put_annotation(key="tenant_id", value=tenant_id)
        except Exception:  # no active segment outside Lambda/X-Ray: annotation is best effort
            pass
