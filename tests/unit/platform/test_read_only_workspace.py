"""A write that reaches a tenant database made read-only by a move (funnel.platform.operations_move) is a 503
the client retries, documented on every authenticated write, never a 500."""
from __future__ import annotations

import asyncio
import json

from psycopg.errors import ReadOnlySqlTransaction
from starlette.requests import Request

from funnel.api import problems
from funnel.api.openapi import platform_errors


def _request(path: str = "/v1/contacts") -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""})


def test_a_write_to_a_read_only_workspace_is_a_503_with_retry_after():
    response = asyncio.run(problems.read_only_workspace_handler(
        _request(), ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction")))
    body = json.loads(bytes(response.body))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(problems.MOVE_RETRY_AFTER_SECONDS)
    assert response.media_type == "application/problem+json"
    assert body["status"] == 503 and "moved" in body["detail"] and body["instance"] == "/v1/contacts"


class _Route:
    """What platform_errors reads of a route: its path and its dependencies."""

    def __init__(self, path: str) -> None:
        self.path_format = path

        class _Dependant:
            call = None
            dependencies: list = []
        self.dependant = _Dependant()


def test_authenticated_writes_document_the_503_and_reads_do_not():
    for method in ("post", "put", "patch", "delete"):
        assert 503 in platform_errors(_Route("/v1/contacts/{id}"), method, {})  # type: ignore[arg-type]
    assert 503 not in platform_errors(_Route("/v1/contacts/{id}"), "get", {})  # type: ignore[arg-type]
