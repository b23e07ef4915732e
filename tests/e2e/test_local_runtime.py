"""The local runtime end to end: gateway, SQS pollers, Step Functions, scheduler, restart.

template.yaml serves the real API; tests/e2e/fixtures/runtime-template.yaml adds
small fixture functions (a batch consumer, state machine steps, an HTTP echo,
a schedule target) to the same running runtime.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "runtime-template.yaml"


@pytest.fixture(scope="module")
def fixtures(runtime):
    if "FixtureBatchFunction" not in runtime.functions:
        runtime.add_template(FIXTURE_TEMPLATE)
    return runtime


def wait_for(condition, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


# ------------------------------------------------------------------ gateway
def test_gateway_serves_template_routes_and_404s_everything_else(runtime, api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/openapi.json").json()["info"]["title"] == "Funnel API"
    # declared by template.yaml (/v1/{proxy+}): reaches the API function, which answers with a problem
    unauthenticated = api.get("/v1/no-such-thing")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == "application/problem+json"
    # not declared anywhere: API Gateway's own 404, no handler involved
    for method, path in (("GET", "/not-a-route"), ("POST", "/healthz"), ("GET", "/v2/me")):
        response = api.request(method, path)
        assert (response.status_code, response.json()) == (404, {"message": "Not Found"}), (method, path)


def test_gateway_builds_http_api_v2_events(fixtures, api):
    response = api.get("/fixture/items/42?tag=a&tag=b&empty=", headers={"X-Custom": "Value", "Cookie": "s=1; t=2"})
    assert response.headers["x-echo"] == "yes"
    event = response.json()
    assert event["version"] == "2.0" and event["routeKey"] == "GET /fixture/items/{item_id}"
    assert event["rawPath"] == "/fixture/items/42" and event["rawQueryString"] == "tag=a&tag=b&empty="
    assert event["queryStringParameters"] == {"tag": "a,b", "empty": ""}
    assert event["pathParameters"] == {"item_id": "42"}
    assert event["headers"]["x-custom"] == "Value" and "cookie" not in event["headers"]
    assert event["cookies"] == ["s=1", "t=2"]
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"]) == ("GET", "/fixture/items/42", "127.0.0.1")
    assert http["userAgent"].startswith("python-httpx")

    greedy = api.post("/fixture/files/a/b/c.txt", content=b"plain text", headers={"content-type": "text/plain"}).json()
    assert greedy["pathParameters"] == {"proxy": "a/b/c.txt"}
    assert (greedy["body"], greedy["isBase64Encoded"]) == ("plain text", False)
    binary = api.post("/fixture/files/img.png", content=b"\x89PNG\x00\xff",
                      headers={"content-type": "image/png"}).json()
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == b"\x89PNG\x00\xff"

    decoded = api.post("/fixture/files/binary", content=b"x", headers={"content-type": "text/plain"})
    assert decoded.status_code == 201 and decoded.content == bytes(range(256))
    assert decoded.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_gateway_answers_cors_preflight_for_the_frontend_origin(runtime, api):
    preflight = api.options("/v1/me", headers={"Origin": "http://localhost:3000",
                                               "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-api-key" in preflight.headers["access-control-allow-headers"]
    other = api.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


# ------------------------------------------------------------------ SQS pollers
def test_sqs_poller_honours_batch_item_failures_and_redrives_to_the_dlq(fixtures):
    sqs = fixtures.client("sqs")
    queue_url = fixtures.queue_urls["FixtureBatchQueue"]
    dlq_url = fixtures.queue_urls["FixtureBatchDeadLetterQueue"]
    batch = fixtures.handler_module("FixtureBatchFunction")
    run = uuid.uuid4().hex[:8]
    good, bad = f"{run}-good", f"{run}-bad"
    sqs.send_message_batch(QueueUrl=queue_url, Entries=[
        {"Id": "1", "MessageBody": json.dumps({"id": good})},
        {"Id": "2", "MessageBody": json.dumps({"id": bad, "fail": True})}])

    def deliveries(message_id):
        return [d for d in batch.DELIVERIES if d["id"] == message_id]

    # the failed record comes back (visibility timeout, compressed) until maxReceiveCount = 2 ...
    wait_for(lambda: len(deliveries(bad)) >= 2)
    # ... then SQS's redrive moves it to the DLQ instead of delivering it a third time
    moved = wait_for(lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0).get("Messages"))
    assert json.loads(moved[0]["Body"])["id"] == bad
    assert [d["receive_count"] for d in deliveries(bad)] == [1, 2]
    assert [d["receive_count"] for d in deliveries(good)] == [1]  # succeeded once, deleted, never redelivered
    assert deliveries(good)[0]["function"] == "FixtureBatchFunction"
    time.sleep(0.3)
    assert len(deliveries(bad)) == 2


# ------------------------------------------------------------------ Step Functions
def test_state_machine_retries_maps_and_waits_with_lambda_tasks_in_process(fixtures):
    started = time.perf_counter()
    execution = fixtures.run_state_machine("FixturePipeline", {"run": uuid.uuid4().hex, "fail_times": 2,
                                                               "items": [1, 2, 3, 4]}, timeout=30)
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["prepare"]["prepared"] == {"attempts": 3, "function": "funnel-local-fixture-step"}
    assert output["squares"] == [1, 4, 9, 16]
    # 60 s + 300 s of retry backoff and a one-hour Wait, compressed by time_scale=0
    assert time.perf_counter() - started < 15
    history = fixtures.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"],
                                                                     maxResults=1000)["events"]
    failures = [e for e in history if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failures] == ["TransientError", "TransientError"]
    assert any(e["type"] == "WaitStateEntered" for e in history)


def test_state_machine_catch_routes_a_permanent_error(fixtures):
    execution = fixtures.run_state_machine("FixturePipeline", {"run": uuid.uuid4().hex, "permanent": True,
                                                               "items": []})
    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert output["recovered"] is True and output["error"]["Error"] == "PermanentError"


# ------------------------------------------------------------------ scheduler
def test_scheduler_fires_an_at_schedule_once_and_deletes_it(fixtures):
    import os

    scheduler = fixtures.client("scheduler")
    recorder = fixtures.handler_module("FixtureRecorderFunction")
    group = os.environ["FUNNEL_SCHEDULER_GROUP"]
    marker = uuid.uuid4().hex
    due = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    scheduler.create_schedule(
        Name=f"once-{marker[:8]}", GroupName=group, ScheduleExpression=f"at({due})", ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE",
        Target={"Arn": "arn:aws:lambda:us-east-1:123456789012:function:funnel-local-fixture-recorder",
                "RoleArn": os.environ["FUNNEL_SCHEDULER_ROLE_ARN"], "Input": json.dumps({"marker": marker})})
    wait_for(lambda: any(e.get("marker") == marker for e in recorder.EVENTS))
    wait_for(lambda: not any(s["Name"] == f"once-{marker[:8]}"
                             for s in scheduler.list_schedules(GroupName=group)["Schedules"]))
    fixtures.tick_scheduler()
    assert sum(e.get("marker") == marker for e in recorder.EVENTS) == 1


def test_scheduler_fires_schedule_events_declared_in_the_template(fixtures):
    recorder = fixtures.handler_module("FixtureRecorderFunction")
    before = sum(e == {"source": "template-rate"} for e in recorder.EVENTS)
    fixtures.tick_scheduler()
    assert sum(e == {"source": "template-rate"} for e in recorder.EVENTS) == before  # not due yet
    fixtures.tick_scheduler(datetime.now(UTC) + timedelta(minutes=5, seconds=1))
    assert sum(e == {"source": "template-rate"} for e in recorder.EVENTS) == before + 1


# ------------------------------------------------------------------ restart
def test_restart_keeps_secrets_objects_and_the_database(fixtures):
    import os

    from funnel.platform import crypto
    from funnel.settings import get_settings

    tenant_id = str(uuid.uuid4())
    sealed = crypto.encrypt("wordpress application password", tenant_id)
    s3 = fixtures.client("s3")
    bucket = get_settings().artifacts_bucket
    s3.put_object(Bucket=bucket, Key="storage/restart/check.json", Body=b'{"kept": true}',
                  ContentType="application/json")
    secrets = fixtures.client("secretsmanager")
    secrets.create_secret(Name="funnel/local/restart-check", SecretString="still here")
    data_key = secrets.get_secret_value(SecretId=os.environ["FUNNEL_DATA_KEY_SECRET_ID"])["SecretString"]
    # a tenant database left behind by older code: the restart brings it up to the migrations' heads
    from funnel import db
    from funnel.platform import migrations
    from funnel.platform.tenants import directory
    from tests.support.tenants import new_tenant

    behind = new_tenant()
    behind_db = db.database_name(directory.get(behind.tenant_id).database_url)
    migrations.run("tenant", db.admin_url(behind_db), "downgrade", "t0002_email")

    fixtures.restart()

    with db.admin_connect(behind_db) as conn:
        assert conn.execute("SELECT to_regclass('email_send_slots') AS t").fetchone()["t"] == "email_send_slots"

    secrets = fixtures.client("secretsmanager")
    assert secrets.get_secret_value(SecretId=os.environ["FUNNEL_DATA_KEY_SECRET_ID"])["SecretString"] == data_key
    assert secrets.get_secret_value(SecretId="funnel/local/restart-check")["SecretString"] == "still here"
    assert crypto.decrypt(sealed, tenant_id) == "wordpress application password"
    stored = fixtures.client("s3").get_object(Bucket=bucket, Key="storage/restart/check.json")
    assert stored["Body"].read() == b'{"kept": true}' and stored["ContentType"] == "application/json"
    assert "FixtureBatchFunction" in fixtures.functions  # templates added before the restart are loaded again
