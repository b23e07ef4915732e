"""The connection budget (docs/deploy.md "Connection budget"): every function's reserved concurrency times the
connections one instance borrows fits RDS Proxy's share of the instance's max_connections with 20% headroom.

Computed from template.yaml's parameter defaults, so raising a function's concurrency (or adding a function)
without raising the database's size fails here before it fails in production as "too many connections".
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from funnel_dev.template import FUNCTION, load_yaml

ROOT = Path(__file__).resolve().parents[2]
HEADROOM = 0.20


@pytest.fixture(scope="module")
def document() -> dict:
    return load_yaml(ROOT / "template.yaml")


def _number(document: dict, value) -> int:
    if isinstance(value, dict) and "Ref" in value:
        return int(document["Parameters"][value["Ref"]]["Default"])
    return int(value)


def reserved_instances(document: dict) -> dict[str, int]:
    """Each function's reserved concurrency (every function has one: test below)."""
    return {lid: _number(document, r["Properties"]["ReservedConcurrentExecutions"])
            for lid, r in document["Resources"].items()
            if r["Type"] == FUNCTION and "ReservedConcurrentExecutions" in r["Properties"]}


def budget(document: dict) -> tuple[int, int]:
    """(connections the functions may borrow at once, connections the proxy may open minus the headroom)."""
    params = document["Parameters"]
    per_instance = {lid: int(params["DbConnectionsPerInstance"]["Default"]) for lid in reserved_instances(document)}
    # the operations function migrates Workers tenant databases at once, each in a process with its own
    # connection, beside its control-database connection
    per_instance["PlatformOperationsFunction"] = int(
        document["Resources"]["PlatformMigrations"]["Properties"]["Workers"]) + 1
    demand = sum(instances * per_instance[lid] for lid, instances in reserved_instances(document).items())
    proxy = int(params["DbMaxConnections"]["Default"]) * int(params["ProxyMaxConnectionsPercent"]["Default"]) / 100
    return demand, int(proxy * (1 - HEADROOM))


def test_every_function_has_a_reserved_concurrency(document):
    functions = [lid for lid, r in document["Resources"].items() if r["Type"] == FUNCTION]
    assert sorted(reserved_instances(document)) == sorted(functions), \
        "a function without ReservedConcurrentExecutions could take every connection the proxy has"


def test_the_functions_fit_the_proxy_with_headroom(document):
    demand, supply = budget(document)
    assert demand <= supply, (f"functions may borrow {demand} connections at once; the proxy offers {supply} after "
                              f"{HEADROOM:.0%} headroom: lower a concurrency parameter or raise DbMaxConnections")


def test_the_budget_fails_when_a_concurrency_outgrows_the_database(document):
    grown = copy.deepcopy(document)
    grown["Parameters"]["ApiConcurrency"]["Default"] = 500
    demand, supply = budget(grown)
    assert demand > supply


def test_the_proxy_opens_the_share_the_budget_counts(document):
    targets = document["Resources"]["DatabaseProxyTargets"]["Properties"]["ConnectionPoolConfigurationInfo"]
    assert targets["MaxConnectionsPercent"] == {"Ref": "ProxyMaxConnectionsPercent"}


def test_sqs_pollers_never_outnumber_the_reserved_instances(document):
    """More pollers than instances would throttle batches, and a throttled batch counts as a failed receive
    (a message reaches its DLQ without ever running)."""
    for lid, resource in document["Resources"].items():
        if resource["Type"] != FUNCTION:
            continue
        reserved = _number(document, resource["Properties"]["ReservedConcurrentExecutions"])
        for name, event in (resource["Properties"].get("Events") or {}).items():
            if event["Type"] == "SQS":
                pollers = event["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
                assert pollers is not None, f"{lid}.{name}: no MaximumConcurrency"
                assert _number(document, pollers) <= reserved, f"{lid}.{name}"
