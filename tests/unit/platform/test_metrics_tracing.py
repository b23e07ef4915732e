"""Metrics (CloudWatch EMF on stdout) and traces (Powertools' Tracer) as the handlers emit them."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from funnel import observability
from funnel.observability import bind_tenant, count, flush_metrics, llm_usage, tracer

ROOT = Path(__file__).resolve().parents[3]
CONTEXT = SimpleNamespace(function_name="funnel-test-notifications-delivery", memory_limit_in_mb=1024,
                          invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:x",
                          aws_request_id="req-1")


def _load(function: str):
    spec = importlib.util.spec_from_file_location(f"{function}_metrics_test", ROOT / "functions" / function / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _emf(output: str) -> list[dict]:
    """The EMF records among the stdout lines (the logger writes its JSON lines there too)."""
    return [record for record in (json.loads(line) for line in output.splitlines() if line.startswith("{"))
            if "_aws" in record]


@pytest.fixture
def stdout(capsys):
    flush_metrics()  # nothing left over from another test
    capsys.readouterr()
    yield lambda: _emf(capsys.readouterr().out)
    flush_metrics()
    bind_tenant(None)


def _sqs(*bodies: dict) -> dict:
    return {"Records": [{"messageId": f"m-{i}", "receiptHandle": f"r-{i}", "body": json.dumps(body),
                         "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                         "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:notifications"}
                        for i, body in enumerate(bodies)]}


def test_a_handler_flushes_one_emf_record_per_tenant_with_the_tenant_as_a_property(stdout, monkeypatch):
    app = _load("notifications_delivery")

    def deliver(tenant_id, row_id, receive_count=1):  # what funnel.notifications.delivery counts on success
        count("NotificationsDelivered", tenant_id=tenant_id)
        return "DELIVERED"

    monkeypatch.setattr(app, "deliver", deliver)
    answer = app.handler(_sqs({"tenant_id": "tenant-a", "id": "n1"}, {"tenant_id": "tenant-a", "id": "n2"},
                              {"tenant_id": "tenant-b", "id": "n3"}), CONTEXT)
    assert answer == {"batchItemFailures": []}
    records = stdout()
    assert [r["tenant_id"] for r in records] == ["tenant-a", "tenant-b"]
    for record, values in zip(records, ([1.0, 1.0], [1.0]), strict=True):
        (definition,) = record["_aws"]["CloudWatchMetrics"]
        assert definition["Namespace"] == "Funnel"
        assert definition["Metrics"] == [{"Name": "NotificationsDelivered", "Unit": "Count"}]
        # The tenant is a property, never a dimension (one metric per tenant would explode the metric count).
        assert definition["Dimensions"] == [["service"]] and record["service"] == "funnel"
        assert record["NotificationsDelivered"] == values


def test_a_handler_that_counted_nothing_writes_no_record_and_one_that_raised_still_flushes(stdout):
    app = _load("content_schedule")
    app.fire = lambda tenant_id, schedule_id, scheduled_time: {"fired": schedule_id}
    assert app.handler({"tenant_id": "t", "schedule_id": "s"}, CONTEXT) == {"fired": "s"}
    assert stdout() == []

    def fails(tenant_id, schedule_id, scheduled_time):
        count("ArticlesPublished", tenant_id=tenant_id)
        raise RuntimeError("boom")

    app.fire = fails
    with pytest.raises(RuntimeError):
        app.handler({"tenant_id": "tenant-c", "schedule_id": "s"}, CONTEXT)
    (record,) = stdout()
    assert record["ArticlesPublished"] == [1.0] and record["tenant_id"] == "tenant-c"


def test_llm_usage_is_one_record_per_call_with_the_step_as_a_dimension_and_the_bound_tenant(stdout):
    bind_tenant("tenant-l")
    llm_usage("write_article", "offline/offline", input_tokens=120, output_tokens=30, cost_usd=0.0015)
    (record,) = stdout()
    (definition,) = record["_aws"]["CloudWatchMetrics"]
    assert definition["Dimensions"] == [["step", "service"]] and record["step"] == "write_article"
    assert {m["Name"] for m in definition["Metrics"]} == {"LlmInputTokens", "LlmOutputTokens", "LlmCostUsd"}
    assert (record["LlmInputTokens"], record["LlmOutputTokens"], record["LlmCostUsd"]) == ([120.0], [30.0], [0.0015])
    assert record["tenant_id"] == "tenant-l" and record["model"] == "offline/offline"


class _Segment(BaseSegment):
    def __init__(self, name: str) -> None:
        self.name, self.annotations, self.metadata = name, {}, {}

    def close(self, end_time=None): ...
    def add_subsegment(self, subsegment): ...
    def remove_subsegment(self, subsegment): ...
    def add_exception(self, exception, stack, remote=False): ...

    def put_annotation(self, key, value):
        self.annotations[key] = value

    def put_metadata(self, key, value, namespace="default"):
        self.metadata[key] = value


class _Recording(BaseProvider):
    """Records every subsegment opened (name and the enclosing one) instead of sending it to X-Ray."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str | None]] = []
        self.segments: list[_Segment] = []
        self._open: list[str] = []

    @contextmanager
    def in_subsegment(self, name=None, **kwargs):
        segment = _Segment(name)
        self.opened.append((name, self._open[-1] if self._open else None))
        self.segments.append(segment)
        self._open.append(name)
        try:
            yield segment
        finally:
            self._open.pop()

    @asynccontextmanager
    async def in_subsegment_async(self, name=None, **kwargs):
        yield _Segment(name)

    def put_annotation(self, key, value): ...
    def put_metadata(self, key, value, namespace="default"): ...
    def patch(self, modules): ...
    def patch_all(self): ...


@pytest.fixture
def recorded():
    Tracer._reset_config()  # Powertools keeps the first Tracer's provider and state for every later one
    provider = _Recording()
    tracer.use(Tracer(service="funnel", disabled=False, auto_patch=False, provider=provider))
    yield provider
    Tracer._reset_config()
    tracer.use(None)


def test_a_traced_handler_records_its_subsegment_and_one_around_a_wordpress_call(recorded, monkeypatch):
    from funnel.content import wordpress

    monkeypatch.setattr(wordpress, "http_client", lambda allow, **kw: httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=[{"id": 7}])), **kw))
    site = wordpress.WordPressSite("https://blog.example.com", "editor", "app password")

    @tracer.capture_lambda_handler
    def handler(event, context):
        return {"posts": site.request("GET", "posts").json(), "token": "secret"}

    assert handler({}, CONTEXT) == {"posts": [{"id": 7}], "token": "secret"}
    assert recorded.opened == [("## handler", None), ("## wordpress", "## handler")]
    outer = recorded.segments[0]
    assert outer.annotations == {"ColdStart": outer.annotations["ColdStart"], "Service": "funnel"}
    assert outer.metadata == {}  # responses hold tokens and personal data: never recorded


def test_without_a_tracer_in_reach_nothing_imports_the_xray_sdk():
    code = ("import os, sys; os.environ['POWERTOOLS_TRACE_DISABLED'] = 'true'\n"
            "from funnel.observability import tracer\n"
            "with tracer.subsegment('x'):\n    pass\n"
            "print(tracer.made, 'aws_xray_sdk.core' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False"]


def test_every_handler_but_the_tracking_one_is_traced_and_flushes_its_metrics():
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        text = app.read_text()
        if app.parent.name == "email_tracking":  # framework-free (cold start): flushes after recording an event
            assert "flush_metrics()" in text and "aws_lambda_powertools" not in text
            continue
        assert "@tracer.capture_lambda_handler\n" in text and "@log_metrics\n" in text, app
    assert observability.metrics.provider.namespace == "Funnel"
