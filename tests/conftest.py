"""Shared fixtures: one local runtime per test process, started only when a test asks for it.

``runtime`` starts the real LocalRuntime (PostgreSQL, moto server, API gateway,
pollers, scheduler) from template.yaml on free ports with a per-worker state
directory, with time compressed to 0 (Retry/Wait take no wall time). Tests that
do not request it (unit tests, template checks) never pay for it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from funnel_dev.ports import free_port

# What template.yaml's Globals give every function and Powertools reads when funnel.observability is first
# imported: the service name and namespace; tracing off, as in the local runtime (no X-Ray daemon here).
# At import of this root conftest, not in pytest_configure: pytest imports the conftests of the folders named on
# its command line (tests/unit/outreach/conftest.py, ...) before any pytest_configure runs, and those import the
# product.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "funnel")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Funnel")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


def _child_processes(*, warm_browsers: bool = True) -> set[int]:
    """Live (not zombie) child processes of this test process; without ``warm_browsers`` leaving out
    Playwright drivers (see ``nothing_left_running_after_the_test``)."""
    me, children = str(os.getpid()), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
            if parent != me or state == "Z":
                continue
            if not warm_browsers and b"run-driver" in (stat.parent / "cmdline").read_bytes():
                continue
        except (OSError, IndexError, ValueError):
            continue
        children.add(int(stat.parent.name))
    return children


def _left_running(threads_before: set, children_before: set[int], *, daemons: bool, grace: float,
                  warm_browsers: bool = True):
    """Threads and child processes started since the snapshot that are still alive after ``grace`` s."""
    deadline = time.monotonic() + grace
    while True:
        threads = sorted(t.name for t in threading.enumerate()
                         if t not in threads_before and t.is_alive() and (daemons or not t.daemon)
                         and (warm_browsers or not t.name.startswith("asyncio_")))
        children = sorted(_child_processes(warm_browsers=warm_browsers) - children_before)
        if (not threads and not children) or time.monotonic() > deadline:
            return threads, children
        time.sleep(0.05)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running_at_session_end():
    """Set up first, so torn down last (after ``runtime.stop()``): every thread, daemon or not, and every
    child process that the session started must have ended."""
    threads, children = set(threading.enumerate()), _child_processes()
    yield
    threads, children = _left_running(threads, children, daemons=True, grace=10.0)
    assert not threads and not children, f"still running after the session: threads {threads}, processes {children}"


@pytest.fixture(autouse=True)
def nothing_left_running_after_the_test():
    """Non-daemon threads and child processes a test (or its function-scoped fixtures) started must have
    ended with it; longer-lived fixtures are set up before this snapshot and checked at session end.

    Warm browsers are the one exception: the session runtime's browser-worker threads start their
    Playwright driver during whichever test first sends to the browser queue and keep it, as a Lambda
    environment does, until ``runtime.stop()`` shuts each poller thread down; and a module's warm
    FormEngine starts its event loop's executor thread (``asyncio_N``) on the first screenshot it
    saves. Both are checked at session end."""
    threads, children = set(threading.enumerate()), _child_processes(warm_browsers=False)
    yield
    threads, children = _left_running(threads, children, daemons=False, grace=5.0, warm_browsers=False)
    assert not threads and not children, f"still running after the test: threads {threads}, processes {children}"


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture(scope="session")
def runtime(request):
    from funnel_dev.runtime import LocalRuntime

    workerinput = getattr(request.config, "workerinput", None)  # set by pytest-xdist in its workers
    worker_id = workerinput["workerid"] if workerinput else "main"
    api_port, moto_port, pg_port = distinct_free_ports(3)
    # Not under pytest's temporary directory: run as root, the runtime's PostgreSQL runs as the postgres user,
    # which needs to traverse every parent of its data directory, and any other pytest session starting on
    # the machine takes those rights off /tmp/pytest-of-root again (its 0700 rule): the server then dies in
    # the middle of this session ("could not open file .../global/pg_control: Permission denied").
    state_dir = Path(tempfile.mkdtemp(prefix=f"funnel-test-runtime-{worker_id}-"))
    local = LocalRuntime(state_dir, api_port=api_port, moto_port=moto_port, pg_port=pg_port, time_scale=0,
                         tuned_for_tests=True, ssrf_allow_hosts=["127.0.0.1", "localhost"])
    try:
        local.start()
        yield local
        local.stop()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def contract_check(runtime):
    """Checks each API answer against the OpenAPI document the API serves (tests/support/contract.py)."""
    import httpx

    from tests.support.contract import ContractCheck

    return ContractCheck(httpx.get(runtime.api_url + "/openapi.json", timeout=30).json())


@pytest.fixture
def api(runtime, contract_check):
    """An HTTP client of the local API; an answer the OpenAPI document does not promise fails the test."""
    from tests.support.gateway_client import gateway_client

    with gateway_client(runtime.api_url, timeout=30, event_hooks={"response": [contract_check]}) as client:
        yield client
