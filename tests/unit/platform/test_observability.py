"""Every log line carries its own request's tenant, even where requests share a process (threads, tasks)."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import threading

import pytest

from funnel.observability import bind_tenant, logger


@pytest.fixture
def lines():
    """The lines logged by this module's code, not by threads already running in the worker (a session
    runtime's pollers and scheduler log into the same logger). Filtering by source file rather than by thread
    id: an exited poller thread's id is reused by the threads a test starts."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    handler.addFilter(lambda record: record.pathname == __file__)
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.removeHandler(handler)
    bind_tenant(None)


def test_a_bound_tenant_is_on_every_line_until_unbound(lines):
    bind_tenant("tenant-a", "user-1")
    logger.info("first")
    logger.info("second")
    bind_tenant(None)
    logger.info("anonymous")
    first, second, anonymous = lines()
    assert first["tenant_id"] == second["tenant_id"] == "tenant-a" and first["user_id"] == "user-1"
    assert "tenant_id" not in anonymous and "user_id" not in anonymous


def test_concurrent_requests_in_one_process_each_log_their_own_tenant(lines):
    barrier = threading.Barrier(2)

    def request(tenant: str) -> None:
        bind_tenant(tenant)
        barrier.wait()  # both tenants bound before either logs
        logger.info("work", extra={"for": tenant})

    threads = [threading.Thread(target=request, args=(t,)) for t in ("tenant-a", "tenant-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted((line["for"], line["tenant_id"]) for line in lines()) == [("tenant-a", "tenant-a"),
                                                                          ("tenant-b", "tenant-b")]


def test_an_api_requests_tenant_ends_with_the_request(lines):
    async def request() -> None:  # Mangum runs each request as its own task
        bind_tenant("tenant-a")
        logger.info("inside")

    asyncio.run(request())
    logger.info("after")
    inside, after = lines()
    assert inside["tenant_id"] == "tenant-a" and "tenant_id" not in after
