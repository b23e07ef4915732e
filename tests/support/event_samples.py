"""What the sample events in events/<Function>/ need to run against the local runtime, and how their
outcome is checked.

A sample may name data with ``{{placeholder}}``: ``seed`` creates a tenant with what the success-path
samples act on (an API key, a run, signed tracking links) and returns the values substituted. Each
sample ``<name>.json`` has ``<name>.expect.json`` beside it: the handler's answer must match it, where a
dict matches when each of its keys matches (other keys are free), ``"*"`` matches any present value, and
an API answer's ``body`` is compared as parsed JSON (base64 decoded first when the answer says so) or,
for a non-JSON body, as text that must contain the expected string.
"""
from __future__ import annotations

import base64
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


def seed(runtime) -> dict[str, str]:
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
    key, message_id = tokens.tracking_key(), str(uuid.uuid4())
    return {
        "sent_message_id": str(sent["id"]),
        "import_job_id": str(job["id"]),
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
        return [p for i, (e, a) in enumerate(zip(expected, actual)) for p in mismatches(e, a, f"{where}[{i}]")]
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
