"""Shared fixtures: one local runtime per test process, started only when a test asks for it.

``runtime`` starts the real LocalRuntime (PostgreSQL, moto server, API gateway,
pollers, scheduler) from template.yaml on free ports with a per-worker state
directory, with time compressed to 0 (Retry/Wait take no wall time). Tests that
do not request it (unit tests, template checks) never pay for it.
"""
from __future__ import annotations


import pytest

from funnel_dev.ports import free_port


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture(scope="session")
def runtime(request, tmp_path_factory):
    from funnel_dev.runtime import LocalRuntime

    workerinput = getattr(request.config, "workerinput", None)  # set by pytest-xdist in its workers
    worker_id = workerinput["workerid"] if workerinput else "main"
    api_port, moto_port, pg_port = distinct_free_ports(3)
    local = LocalRuntime(tmp_path_factory.mktemp(f"runtime-{worker_id}"), api_port=api_port, moto_port=moto_port,
                         pg_port=pg_port, time_scale=0, tuned_for_tests=True,
                         ssrf_allow_hosts=["127.0.0.1", "localhost"])
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def contract_check(runtime):
    """Checks each API answer against the OpenAPI document the API serves (tests/support/contract.py)."""
    import httpx

    from tests.support.contract import ContractCheck

    return ContractCheck(httpx.get(runtime.api_url + "/openapi.json", timeout=30).json())


@pytest.fixture
def api(runtime, contract_check):
    """An HTTP client of the local API; an answer the OpenAPI document does not promise fails the test."""
    import httpx

    with httpx.Client(base_url=runtime.api_url, timeout=30, event_hooks={"response": [contract_check]}) as client:
        yield client
