"""Every API answer the suite sees must be one the OpenAPI document promises.

The ``api`` fixture's client runs ``ContractCheck`` on each response: an answer whose status, or whose
content type for that status, the operation does not document fails the test that got it. Success bodies
are already checked against their response models by the app itself; this catches the other half (an
error a route gives but does not declare, a problem served as plain JSON).
"""
from __future__ import annotations

import re
import uuid
from typing import Any

import httpx


class ContractCheck:
    def __init__(self, document: dict[str, Any]) -> None:
        self.operations: list[tuple[re.Pattern[str], str, dict[str, Any]]] = []
        for template, methods in document["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
            for method, operation in methods.items():
                self.operations.append((pattern, method.upper(), operation))
        # Literal paths win over templated ones (/v1/runs/stats before /v1/runs/{run_id}).
        self.operations.sort(key=lambda entry: entry[0].pattern.count("[^/]+"))

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        for pattern, operation_method, operation in self.operations:
            if operation_method == method and pattern.match(path):
                return operation
        return None

    def problem(self, response: httpx.Response) -> str | None:
        """Why ``response`` breaks the contract, or None."""
        request = response.request
        operation = self.operation(request.method, request.url.path)
        if operation is None:
            return None  # not an operation of the API function (e.g. tracking, webhooks of other functions)
        documented = operation.get("responses", {})
        status = str(response.status_code)
        declared = documented.get(status) or documented.get("default")
        name = f"{request.method} {request.url.path} ({operation.get('operationId')})"
        if declared is None:
            return f"{name} answered {status}, which it does not document (it documents {sorted(documented)})"
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        content = declared.get("content")
        if media_type and content is not None and media_type not in content:
            return f"{name} answered {status} as {media_type}; the document says {sorted(content)}"
        return None

    def __call__(self, response: httpx.Response) -> None:
        broken = self.problem(response)
        if broken:
            raise AssertionError("API contract: " + broken)


def random_client_address() -> str:
    """A private address of its own for a test client, so per-address rate limits of other tests never meet it."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def contract_client(app, contract: ContractCheck, address: str | None = None):
    """A TestClient of ``app`` calling from ``address`` (default: an address of its own) whose every answer must be
    one the OpenAPI document promises."""
    from fastapi.testclient import TestClient

    client = TestClient(app, client=(address or random_client_address(), 50000))
    client.event_hooks = {"request": [], "response": [contract]}
    return client
