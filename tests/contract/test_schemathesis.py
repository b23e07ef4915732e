"""Schemathesis over every operation of the API document: generated requests, valid and invalid, sent through the
test runtime's local gateway (real PostgreSQL and moto), signed in with a real tenant's admin API key.

Each answer must pass schemathesis' response-conformance checks: no 5xx, a status code and a content type the
operation documents, and a body that matches the documented schema. The budget is bounded so that it fits CI
(MAX_EXAMPLES valid and MAX_EXAMPLES invalid cases per operation, derandomized: the same cases on every run, so a
finding reproduces). Every finding is collected, so one run lists them all.
"""
from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

from funnel.platform import auth
from tests.support.tenants import new_tenant

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 4
CONFIG = schemathesis.Config.from_dict({"seed": 20261201, "generation": {"deterministic": True}})


def _findings(operation, mode: GenerationMode, session: requests.Session, headers: dict[str, str],
              cases: dict[str, int]) -> list[str]:
    """What the checks found for ``operation`` over MAX_EXAMPLES generated cases of ``mode``."""
    found: list[str] = []

    @given(operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case):
        cases[operation.label] = cases.get(operation.label, 0) + 1
        try:
            case.call_and_validate(session=session, headers=headers, checks=CHECKS)
        except (Failure, FailureGroup) as finding:  # a group: one message per failed check
            found.append(f"{operation.label} ({mode.value}): {str(finding)[:1500]}")

    try:
        run()
    except Unsatisfiable:  # nothing of the operation can be made invalid (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, operation.label
    return found


def test_every_operation_answers_as_documented(runtime):
    # The document's first request builds it (every area's routes and models): seconds on a busy machine, over
    # requests' 10 s default that schemathesis would use.
    schema = schemathesis.openapi.from_url(runtime.api_url + "/openapi.json", config=CONFIG, timeout=60)
    operations = [result.ok() for result in schema.get_all_operations()]
    tenant = new_tenant(pool="pool_schemathesis")
    headers = {"X-Api-Key": auth.create_api_key(tenant.owner, "schemathesis", "admin", None)["key"]}
    findings: list[str] = []
    cases: dict[str, int] = {}
    with requests.Session() as session:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                findings += _findings(operation, mode, session, headers, cases)
    assert len(operations) >= 100 and sorted(cases) == sorted(op.label for op in operations)  # each one was called
    assert not findings, f"{len(findings)} findings:\n" + "\n\n".join(findings)
