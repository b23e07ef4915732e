"""Operating the stack (docs/deploy.md "Alarms and the dashboard"): what must page someone does, through the
alarm topic, and the dashboard shows every function, queue and pipeline."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from funnel_dev.template import FUNCTION, QUEUE, STATE_MACHINE, load_yaml

ROOT = Path(__file__).resolve().parents[2]
ALARM = "AWS::CloudWatch::Alarm"


@pytest.fixture(scope="module")
def resources() -> dict:
    return load_yaml(ROOT / "template.yaml")["Resources"]


def _alarms(resources: dict) -> list[dict]:
    return [r["Properties"] for r in resources.values() if r["Type"] == ALARM]


def _watched(alarm: dict) -> list[tuple[str, str, dict]]:
    """(namespace, metric, dimensions) of an alarm, single metric or metric math."""
    if "MetricName" in alarm:
        return [(alarm["Namespace"], alarm["MetricName"], {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])})]
    return [(m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"],
             {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"].get("Dimensions", [])})
            for m in alarm["Metrics"] if "MetricStat" in m]


def test_every_alarm_notifies_the_alarm_topic(resources):
    for alarm in _alarms(resources):
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], alarm["AlarmName"]


def test_state_machine_failures_and_timeouts_alarm(resources):
    watched = {(metric, dims.get("StateMachineArn", {}).get("Ref"))
               for alarm in _alarms(resources) for _, metric, dims in _watched(alarm)}
    for lid, r in resources.items():
        if r["Type"] == STATE_MACHINE:
            assert ("ExecutionsFailed", lid) in watched and ("ExecutionsTimedOut", lid) in watched, lid


def test_every_function_has_a_throttle_alarm(resources):
    throttled = {dims["FunctionName"]["Ref"] for alarm in _alarms(resources)
                 for _, metric, dims in _watched(alarm) if metric == "Throttles"}
    assert throttled == {lid for lid, r in resources.items() if r["Type"] == FUNCTION}


def test_the_api_5xx_rate_p99_latency_and_proxy_saturation_alarm(resources):
    metrics = {(ns, metric) for alarm in _alarms(resources) for ns, metric, _ in _watched(alarm)}
    assert {("AWS/ApiGateway", "5xx"), ("AWS/ApiGateway", "Count"), ("AWS/ApiGateway", "Latency"),
            ("AWS/RDS", "DatabaseConnectionsCurrentlyBorrowed")} <= metrics
    latency = next(a for a in _alarms(resources) if a.get("MetricName") == "Latency")
    assert latency["ExtendedStatistic"] == "p99"


def test_the_dashboard_shows_every_function_queue_and_pipeline(resources):
    [dashboard] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert dashboard["DashboardName"] == {"Fn::Sub": "funnel-${Environment}"}
    body = dashboard["DashboardBody"]["Fn::Sub"]
    json.loads(body)  # valid JSON before substitution (every ${...} sits inside a string)
    for lid, r in resources.items():
        if r["Type"] in (FUNCTION, STATE_MACHINE):
            assert "${" + lid + "}" in body, f"{lid} is not on the dashboard"
        elif r["Type"] == QUEUE and not lid.endswith("DeadLetterQueue"):
            assert "${" + lid + ".QueueName}" in body, f"{lid} is not on the dashboard"


def test_the_public_tracking_routes_are_throttled(resources):
    events = resources["EmailTrackingFunction"]["Properties"]["Events"]
    for name, event in events.items():
        settings = event["Properties"].get("RouteSettings", {})
        assert settings.get("ThrottlingRateLimit") == {"Ref": "TrackingRateLimit"}, name
        assert settings.get("ThrottlingBurstLimit") == {"Ref": "TrackingBurstLimit"}, name
