"""What the sample events in events/<Function>/ need to run against the local runtime, and how their
outcome is checked.

A sample may name data with ``{{placeholder}}``: ``seed`` creates a tenant with what the success-path
samples act on (an API key, a run, signed tracking links) and returns the values substituted. Each
sample ``<name>.json`` has ``<name>.expect.json`` beside it: the handler's answer must match it, where a
dict matches when each of its keys matches (other keys are free), ``"*"`` matches any present value, and
an API answer's ``body`` is compared as parsed JSON (base64 decoded first when the answer says so) or,
for a non-JSON body, as text that must contain the expected string.

A sample whose answer alone says little (an SQS consumer answers ``{"batchItemFailures": []}`` whether it
did its work or not) also has an entry in ``AFTERWARDS``: what the sample should have left behind (rows in the
tenant's database, a Step Functions execution), observed right after the invocation and compared the same way.
"""
from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


def seed(runtime, stack: ExitStack) -> dict[str, str]:
    """Create what the samples act on; what must end with them (a local company site, a waiting Step
    Functions execution and its queue) is handed to ``stack``, to be closed when the samples are done."""
    import httpx

    from funnel import db
    from funnel.email import tokens
    from funnel.notifications.service import notify
    from funnel.platform import runs, storage
    from tests.support.tenants import new_tenant

    tenant = new_tenant()

    def api(method: str, path: str, body: dict) -> dict:
        response = httpx.request(method, runtime.api_url + path, json=body, timeout=30,
                                 headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
        assert response.status_code < 300, response.text
        return response.json()

    api_key = api("POST", "/v1/api-keys", {"name": "event samples"})["key"]
    with db.tenant_transaction(tenant.tenant_id) as conn:
        run = runs.create_run(conn, "article_pipeline", {}, tenant.owner_id)
        runs.update_run(conn, str(run["id"]), status="running")
    notification = notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="platform.sample",
                          title="Sample", body="A notification for the delivery sample", channels=("EMAIL",))[0]
    site = api("POST", "/v1/sites", {"slug": f"samples-{uuid.uuid4().hex[:8]}", "wp_admin_url": "http://127.0.0.1:9/",
                                     "wp_username": "admin", "wp_api_token": "aaaa bbbb cccc dddd"})
    product = api("POST", "/v1/products", {"url": "http://127.0.0.1:9/product", "site_id": site["id"]})
    schedule = api("POST", "/v1/schedules", {"site_id": site["id"], "product_id": product["id"],
                                             "cron_expression": "0 9 * * 1", "articles_per_run": 1,
                                             "publish_mode": "draft"})
    task = api("POST", "/v1/tasks", {"name": "Sample send task", "sender": {
        "company": "Acme", "last_name": "Sample", "first_name": "Sam", "email": "sam@example.com"},
        "message": "Hello", "urls": ["http://127.0.0.1:9/contact"]})
    with db.tenant_transaction(tenant.tenant_id) as conn:  # as the send pipeline leaves it before finalize
        send_run = runs.create_run(conn, "send_pipeline", {"task_id": task["id"], "phase": "auto"}, tenant.owner_id)
        conn.execute("UPDATE tasks SET status = 'running' WHERE id = %s", (task["id"],))
        conn.execute("UPDATE task_targets SET status = 'submitted' WHERE task_id = %s", (task["id"],))
    import_key = f"imports/{tenant.tenant_id}/event-sample.csv"  # a pending job, as the API leaves one
    storage.put_bytes(import_key, b"company_name,url\nAlpha,https://alpha.example.co.jp\n", "text/csv")
    with db.tenant_transaction(tenant.tenant_id) as conn:
        job = conn.execute("INSERT INTO import_jobs (user_id, status, total_rows, source_path) "
                           "VALUES (%s, 'pending', 1, %s) RETURNING id", (tenant.owner_id, import_key)).fetchone()
    activity_key = f"imports/{tenant.tenant_id}/activities/event-sample.csv"  # a queued job, as the API leaves one
    storage.put_bytes(activity_key, b"occurred_at,action,provider,external_user_id\n"
                                    b"2026-01-05T10:00:00Z,star,github,583231\n", "text/csv")
    with db.tenant_transaction(tenant.tenant_id) as conn:
        activity_job = conn.execute("INSERT INTO activity_import_jobs (status, file_path, encoding, created_by) "
                                    "VALUES ('queued', %s, 'utf-8', %s) RETURNING job_id",
                                    (activity_key, tenant.owner_id)).fetchone()
    campaign = api("POST", "/v1/email-campaigns", {
        "name": "Samples", "subject": "Our whitepaper", "from_name": "Sam Sample",
        "sender_identity": "Acme Inc., 1-1 Chiyoda, Tokyo", "body": "Hello {{name}}, here it is.",
        "recipients": [{"email": f"reader-{uuid.uuid4().hex[:8]}@example.org", "name": "Reader"}]})
    api("POST", f"/v1/email-campaigns/{campaign['id']}/send", {})
    deadline = time.monotonic() + 60
    while True:  # the runtime's e-mail pollers send it
        with db.tenant_transaction(tenant.tenant_id) as conn:
            sent = conn.execute("SELECT id FROM email_messages WHERE campaign_id = %s AND status = 'sent'",
                                (campaign["id"],)).fetchone()
        if sent or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sent, "the sample campaign was not sent"
    # A message queued for sending that is on no queue: a campaign created as a draft (its messages are 'queued'
    # from the start), then moved to 'sending' as send() does before its fan-out record queues one record per
    # message. Nothing sends it but the sample's own invocation (the runtime's pollers never see it).
    draft = api("POST", "/v1/email-campaigns", {
        "name": "Samples, queued", "subject": "Our whitepaper", "from_name": "Sam Sample",
        "sender_identity": "Acme Inc., 1-1 Chiyoda, Tokyo", "body": "Hello {{name}}, here it is.",
        "recipients": [{"email": f"queued-{uuid.uuid4().hex[:8]}@example.org", "name": "Queued Reader"}]})
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE email_campaigns SET status = 'sending' WHERE id = %s AND status = 'draft'",
                     (draft["id"],))
        queued = conn.execute("SELECT id FROM email_messages WHERE campaign_id = %s AND status = 'queued'",
                              (draft["id"],)).fetchone()
    assert queued, "the draft campaign has no queued message"
    # A browser target as the send pipeline hands it to a worker: a task whose one URL is a real local contact
    # form, started (its run, status 'running') and prepared (the target 'queued'), and the task token of a
    # Step Functions task that waits for the worker's answer.
    from tests.support.contact_sites import ContactSite

    site = ContactSite("127.0.0.1").start()  # the runtime's SSRF allow-list has 127.0.0.1
    stack.callback(site.stop)
    browser_task = api("POST", "/v1/tasks", {"name": "Sample browser task", "sender": {
        "company": "Acme", "last_name": "Sample", "first_name": "Sam", "email": "sam@example.com"},
        "message": "Hello from the event samples", "urls": [site.url], "recontact_days": 0})
    with db.tenant_transaction(tenant.tenant_id) as conn:
        browser_run = runs.create_run(conn, "send_pipeline", {"task_id": browser_task["id"], "phase": "auto"},
                                      tenant.owner_id, 1)
        runs.update_run(conn, str(browser_run["id"]), status="running")
        conn.execute("UPDATE tasks SET status = 'running', run_id = %s, started_at = now() WHERE id = %s",
                     (browser_run["id"], browser_task["id"]))
        target = conn.execute("UPDATE task_targets SET status = 'queued' WHERE task_id = %s AND status = 'pending' "
                              "RETURNING id", (browser_task["id"],)).fetchone()
    assert target, "the browser task has no pending target"
    execution_arn, token = waiting_task_token(runtime, stack)
    key, message_id = tokens.tracking_key(), str(uuid.uuid4())
    return {
        "queued_message_id": str(queued["id"]),
        "queued_campaign_id": draft["id"],
        "browser_task_id": browser_task["id"],
        "browser_target_id": str(target["id"]),
        "browser_task_token": token,
        "browser_execution_arn": execution_arn,
        "sent_message_id": str(sent["id"]),
        "import_job_id": str(job["id"]),
        "activity_import_job_id": str(activity_job["job_id"]),
        "task_id": task["id"],
        "send_run_id": str(send_run["id"]),
        "notification_id": str(notification["id"]),
        "schedule_id": schedule["id"],
        "tenant_id": tenant.tenant_id,
        "owner_email": tenant.owner_email,
        "api_key": api_key,
        "run_id": str(run["id"]),
        "open_token": tokens.sign(key, "o", tenant.tenant_id, message_id),
        "click_token": tokens.sign(key, "c", tenant.tenant_id, message_id, url="https://example.com/pricing"),
    }


WAITING_TASK = {
    "Comment": "One task that waits for a task token, sent with the token to a queue no function reads; "
               "heartbeats as the send pipeline's Browser state takes them (without HeartbeatSeconds one is refused).",
    "StartAt": "Wait",
    "States": {"Wait": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                        "Parameters": {"QueueUrl": "QUEUE_URL", "MessageBody": {"token.$": "$$.Task.Token"}},
                        "HeartbeatSeconds": 600, "TimeoutSeconds": 900, "End": True}},
}


def waiting_task_token(runtime, stack: ExitStack, timeout: float = 60) -> tuple[str, str]:
    """(execution ARN, task token) of a Step Functions task that waits for that token, in a state machine and
    on a queue of its own (in the runtime's moto); ``stack`` ends the execution if the token went unanswered,
    and deletes both."""
    sfn, sqs = runtime.client("stepfunctions"), runtime.client("sqs")
    name = f"event-sample-{uuid.uuid4().hex[:12]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    stack.callback(sqs.delete_queue, QueueUrl=queue_url)
    definition = json.loads(json.dumps(WAITING_TASK).replace("QUEUE_URL", queue_url))
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/event-samples")["stateMachineArn"]
    stack.callback(sfn.delete_state_machine, stateMachineArn=machine)
    execution = sfn.start_execution(stateMachineArn=machine, name=name, input="{}")["executionArn"]
    token: list[str] = []
    stack.callback(_end_if_running, sfn, execution, token)
    deadline = time.monotonic() + timeout
    while not token:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
        if messages:
            token.append(json.loads(messages[0]["Body"])["token"])
        assert token or time.monotonic() < deadline, f"no task token from {execution}"
    return execution, token[0]


def _end_if_running(sfn, execution_arn: str, token: list[str], timeout: float = 30) -> None:
    """Answer a token nobody answered with a failure (moto's StopExecution does not wake a task that waits
    for its token, whose threads would outlive the session), then wait for the execution to end."""
    if sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING":
        return
    try:
        if token:
            sfn.send_task_failure(taskToken=token[0], error="EventSamples.Done", cause="the event samples are done")
    finally:
        sfn.stop_execution(executionArn=execution_arn, cause="the event samples are done")
    deadline = time.monotonic() + timeout
    while sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)


def _queued_message_afterwards(runtime, values: dict[str, str]) -> dict:
    from funnel import db

    with db.tenant_transaction(values["tenant_id"]) as conn:
        message = conn.execute("SELECT status, sent_at, provider_message_id FROM email_messages WHERE id = %s",
                               (values["queued_message_id"],)).fetchone()
        campaign = conn.execute("SELECT status FROM email_campaigns WHERE id = %s",
                                (values["queued_campaign_id"],)).fetchone()
    return {"message": message, "campaign": campaign}


def _browser_target_afterwards(runtime, values: dict[str, str]) -> dict:
    from funnel import db

    with db.tenant_transaction(values["tenant_id"]) as conn:
        target = conn.execute("SELECT status, result_summary FROM task_targets WHERE id = %s",
                              (values["browser_target_id"],)).fetchone()
        sent = conn.execute("SELECT count(*) AS n FROM sent_history WHERE task_id = %s",
                            (values["browser_task_id"],)).fetchone()["n"]
    execution = runtime.client("stepfunctions").describe_execution(executionArn=values["browser_execution_arn"])
    return {"target": target, "sent_history_rows": sent,
            "execution": {"status": execution["status"], "output": json.loads(execution.get("output") or "null")}}


# "<Function>/<sample name>": (what it observes, what it should see given the seeded values).
def _activity_import_afterwards(runtime, values: dict[str, str]) -> dict:
    from funnel import db

    with db.tenant_transaction(values["tenant_id"]) as conn:
        job = conn.execute("SELECT status, metrics FROM activity_import_jobs WHERE job_id = %s",
                           (values["activity_import_job_id"],)).fetchone()
    return {"job": {"status": job["status"], "inserted": job["metrics"].get("inserted")}}


AFTERWARDS: dict[str, tuple[Callable[[Any, dict[str, str]], dict], Callable[[dict[str, str]], dict]]] = {
    "EmailSenderFunction/send-of-a-queued-message": (_queued_message_afterwards, lambda values: {
        "message": {"status": "sent", "sent_at": "*", "provider_message_id": "*"},
        "campaign": {"status": "sent"}}),  # its only message is sent
    "OutreachBrowserWorkerFunction/submission-of-a-queued-target": (_browser_target_afterwards, lambda values: {
        "target": {"status": "submitted"}, "sent_history_rows": 1,
        "execution": {"status": "SUCCEEDED",
                      "output": {"target_id": values["browser_target_id"], "status": "submitted"}}}),
    "CommunityActivityImportFunction/import-of-a-queued-job": (_activity_import_afterwards, lambda values: {
        "job": {"status": "completed", "inserted": 1}}),
}


def sample_key(sample: Path) -> str:
    return f"{sample.parent.name}/{sample.name.removesuffix('.json')}"


def afterwards(sample: Path, runtime, values: dict[str, str]) -> list[str]:
    """Why what ``sample`` left behind is not what ``AFTERWARDS`` expects (nothing when it is, or has no entry)."""
    if sample_key(sample) not in AFTERWARDS:
        return []
    observe, expected = AFTERWARDS[sample_key(sample)]
    return mismatches(expected(values), observe(runtime, values), "afterwards")


def load(path: Path, values: dict[str, str]) -> Any:
    def substitute(match: re.Match) -> str:
        if match.group(1) not in values:
            raise KeyError(f"{path}: no value for {{{{{match.group(1)}}}}}")
        return values[match.group(1)]

    return json.loads(PLACEHOLDER.sub(substitute, path.read_text(encoding="utf-8")))


def expectation_path(sample: Path) -> Path:
    return sample.with_name(sample.name.removesuffix(".json") + ".expect.json")


def mismatches(expected: Any, actual: Any, where: str = "") -> list[str]:
    if expected == "*":
        return [] if actual is not None else [f"{where or '.'}: missing"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or '.'}: expected an object, got {actual!r}"[:300]]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += mismatches(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where or '.'}: expected {expected!r}, got {actual!r}"[:300]]
        return [p for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for p in mismatches(e, a, f"{where}[{i}]")]
    return [] if expected == actual else [f"{where or '.'}: expected {expected!r}, got {actual!r}"[:300]]


def http_body(result: dict) -> Any:
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    content_type = {k.lower(): v for k, v in (result.get("headers") or {}).items()}.get("content-type", "")
    return json.loads(body) if "json" in content_type and body else body


def check(expected: Any, result: Any) -> list[str]:
    """Why ``result`` does not match ``expected`` (nothing when it does)."""
    if isinstance(result, dict) and "statusCode" in result and isinstance(expected, dict) and "body" in expected:
        expected = dict(expected)
        expected_body = expected.pop("body")
        body = http_body(result)
        problems = mismatches(expected, result)
        if isinstance(expected_body, str) and isinstance(body, str):
            return problems + ([] if expected_body in body else [f".body: {expected_body!r} not in {body[:200]!r}"])
        return problems + mismatches(expected_body, body, ".body")
    return mismatches(expected, result)
