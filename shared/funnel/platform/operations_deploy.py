"""The custom resource CloudFormation runs on every deploy (``PlatformMigrations``, ``Custom::PlatformMigrations``
in template.yaml): the control database to head, then every tenant database (``operations.MigrateAll``).

- **Create / Update** migrate; a failed tenant database fails the deploy, its tenants' slugs and error in the
  answer's Reason. Databases already at head are skipped, so the next deploy resumes where this one stopped.
- **An Update that rolls back** (CloudFormation undoing a failed deploy sends an Update whose properties are the
  previous ones: ``MigrationsVersion``, the SharedLayer version the migrations ship in, is older than the one it
  replaces) answers SUCCESS without migrating: migrations only go forward, and the previous code runs on the
  newer schema (expand first, contract in a later release: docs/tenant-placement.md).
- **Delete** answers SUCCESS and touches nothing: the databases, the tenants' data, outlive the stack (the
  instance itself has its DeletionPolicy).

Every request is answered, whatever happens: an exception is a FAILED answer with its message, and tenant
databases are not started once the function's remaining time runs short, so CloudFormation never waits for an
answer that will not come. The answer is a PUT to the request's pre-signed ``ResponseURL``: only to a URL of
CloudFormation's response buckets (``Settings.cfn_response_url_pattern``), and through the SSRF guard's pinned
client like every other URL the product fetches; a request whose URL is anything else is not answered (only a
forged event has one) and is logged.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from funnel.observability import logger
from funnel.platform import operations, ssrf
from funnel.settings import get_settings

PHYSICAL_RESOURCE_ID = "funnel-platform-migrations"
# CloudFormation refuses an answer over 4,096 bytes: the Reason is cut well below that.
REASON_LIMIT = 2500
# Started migrations finish and the answer goes out within this much of the function's timeout.
ANSWER_MARGIN_SECONDS = 120.0
PUT_ATTEMPTS = 3


class CustomResourceRequest(BaseModel):
    """What CloudFormation sends a custom resource's function (the fields this one reads)."""
    model_config = ConfigDict(extra="ignore")

    RequestType: Literal["Create", "Update", "Delete"]
    ResponseURL: str
    StackId: str
    RequestId: str
    LogicalResourceId: str
    PhysicalResourceId: str | None = None
    ResourceProperties: dict[str, Any] = {}
    OldResourceProperties: dict[str, Any] = {}


class CustomResourceAnswer(BaseModel):
    Status: Literal["SUCCESS", "FAILED"]
    Reason: str
    PhysicalResourceId: str
    StackId: str
    RequestId: str
    LogicalResourceId: str
    Data: dict[str, int] = {}


def is_custom_resource_request(event: object) -> bool:
    return isinstance(event, dict) and "RequestType" in event and "ResponseURL" in event


def _layer_version(properties: dict[str, Any]) -> int | None:
    """The version number of a layer version ARN (``arn:...:layer:name:42`` -> 42), or None."""
    match = re.search(r":(\d+)$", str(properties.get("MigrationsVersion", "")))
    return int(match.group(1)) if match else None


def is_rollback(request: CustomResourceRequest) -> bool:
    new, old = _layer_version(request.ResourceProperties), _layer_version(request.OldResourceProperties)
    return request.RequestType == "Update" and new is not None and old is not None and new < old


def decide(request: CustomResourceRequest, remaining_seconds: Callable[[], float]) -> CustomResourceAnswer:
    """Do what the request asks and say how it went (never raises: an exception is a FAILED answer)."""
    status: Literal["SUCCESS", "FAILED"] = "SUCCESS"
    data: dict[str, int] = {}
    try:
        if request.RequestType == "Delete":
            reason = "deleted: the databases and their data stay"
        elif is_rollback(request):
            reason = "rollback: the schema stays at its newer head (migrations only go forward)"
        else:
            deadline = time.monotonic() + remaining_seconds() - ANSWER_MARGIN_SECONDS
            workers = int(request.ResourceProperties.get("Workers", 4))
            report = operations.run({"action": "migrate_all", "workers": workers}, deadline=deadline)
            counts = {"migrated": 0, "at_head": 0, "failed": 0, "not_reached": 0}
            for database in report.databases:
                counts[database.status] += 1
            data = {"Migrated": counts["migrated"], "AtHead": counts["at_head"],
                    "Failed": counts["failed"] + counts["not_reached"]}
            if report.ok:
                reason = (f"control database at head; tenant databases: {counts['migrated']} migrated, "
                          f"{counts['at_head']} already at head")
            else:
                status, reason = "FAILED", report.error or "migrations failed"
    except BaseException as exc:  # the answer must go out whatever happened
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
        logger.exception("custom resource request failed")
    if len(reason) > REASON_LIMIT:
        reason = reason[:REASON_LIMIT - 40] + f"... ({len(reason)} characters; see the function's log)"
    return CustomResourceAnswer(Status=status, Reason=reason,
                                PhysicalResourceId=request.PhysicalResourceId or PHYSICAL_RESOURCE_ID,
                                StackId=request.StackId, RequestId=request.RequestId,
                                LogicalResourceId=request.LogicalResourceId, Data=data)


def check_response_url(url: str) -> None:
    """Only CloudFormation's response buckets are answered (``UnsafeUrlError`` otherwise)."""
    if not re.match(get_settings().cfn_response_url_pattern, url):
        raise ssrf.UnsafeUrlError("the ResponseURL is not a CloudFormation response URL")


def send(url: str, answer: CustomResourceAnswer) -> None:
    """PUT the answer to the pre-signed URL (S3 signed it without a content type: none is sent)."""
    check_response_url(url)
    body = json.dumps(answer.model_dump()).encode()
    last: Exception | None = None
    with ssrf.http_client(timeout=30.0) as client:
        for attempt in range(PUT_ATTEMPTS):
            try:
                response = client.put(url, content=body, headers={"content-type": ""})
                response.raise_for_status()
                return
            except Exception as exc:  # S3 answers 5xx now and then: try again
                last = exc
                time.sleep(0.5 * (attempt + 1))
    assert last is not None
    raise last


def handle(event: dict, remaining_seconds: Callable[[], float]) -> dict:
    """A custom resource request, end to end: decide, answer CloudFormation, return the answer."""
    try:
        request = CustomResourceRequest.model_validate(event)
    except ValidationError as exc:  # without a usable ResponseURL and ids there is nobody to answer
        logger.error("not a custom resource request CloudFormation sends", extra={"errors": exc.errors()})
        return {"Status": "FAILED", "Reason": "not a custom resource request"}
    answer = decide(request, remaining_seconds)
    logger.info("custom resource answered", extra={"request_type": request.RequestType, "status": answer.Status,
                                                   "reason": answer.Reason})
    send(request.ResponseURL, answer)
    return answer.model_dump()
