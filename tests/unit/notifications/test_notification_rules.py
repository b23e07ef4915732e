"""Notifications, pure parts: templates, webhook signatures, backoff, Slack escaping, notify's input
checks (all refused before any database or queue is touched) and the queue consumer's partial failures."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from funnel.notifications import delivery, service, signing, templates
from funnel.platform.errors import NotFound, ValidationFailed

ROOT = Path(__file__).resolve().parents[3]
TENANT = "7d1f3f2e-0000-4000-8000-000000000000"
USER = "3b0c2a8e-1111-4111-8111-111111111111"


# ---------------------------------------------------------------- templates

def test_template_renders_in_the_recipients_language_with_english_fallback():
    variables = {"workspace": "Acme", "inviter": "Ann"}
    assert templates.render("user_invited", variables, None) == ("Welcome to Acme", "Ann invited you to Acme.")
    assert templates.render("user_invited", variables, "ja-JP")[0] == "Acmeへようこそ"
    assert templates.render("user_invited", variables, "fr")[0] == "Welcome to Acme"


def test_template_needs_every_variable_and_a_known_id():
    with pytest.raises(ValidationFailed, match="inviter"):
        templates.render("user_invited", {"workspace": "Acme"}, "en")
    with pytest.raises(ValidationFailed, match="unknown"):
        templates.render("no_such_template", {}, "en")


def test_template_values_are_substituted_once_and_escaped_in_html():
    variables = {"workspace": "{{inviter}}", "inviter": "<script>alert(1)</script>"}
    title, message = templates.render("user_invited", variables, "en", "HTML")
    assert title == "Welcome to {{inviter}}"  # a value is never expanded again
    assert "<script>" not in message and "&lt;script&gt;" in message
    _, plain = templates.render("user_invited", variables, "en", "PLAIN")
    assert "<script>alert(1)</script>" in plain


def test_template_title_fits_the_column():
    title, _ = templates.render("run_completed", {"kind": "x" * 500, "summary": "done"}, "en")
    assert len(title) == 200


# ---------------------------------------------------------------- webhook signatures

def test_signature_verifies_and_refuses_tampering_other_secrets_and_replays():
    body, secret, now = b'{"id": "n1"}', "whsec_test", 1_800_000_000
    header = signing.sign(secret, now, body)
    assert header.startswith("v1=") and len(header) == 3 + 64
    assert signing.verify(secret, str(now), header, body, now=now + 10)
    assert not signing.verify(secret, str(now), header, body + b" ", now=now)
    assert not signing.verify("whsec_other", str(now), header, body, now=now)
    assert not signing.verify(secret, str(now), header, body, now=now + signing.REPLAY_WINDOW_SECONDS + 1)
    assert not signing.verify(secret, str(now), header, body, now=now - signing.REPLAY_WINDOW_SECONDS - 1)
    assert not signing.verify(secret, str(now + 1), header, body, now=now)  # the timestamp is signed too
    for timestamp, signature in ((None, header), (str(now), None), ("-1", header), ("12a", header)):
        assert not signing.verify(secret, timestamp, signature, body, now=now)


# ---------------------------------------------------------------- delivery helpers

def test_backoff_grows_four_fold_and_is_capped(monkeypatch):
    monkeypatch.setattr(delivery, "get_settings", lambda: SimpleNamespace(notification_retry_base_seconds=30))
    assert [delivery.backoff_seconds(n) for n in (1, 2, 3, 4, 5)] == [30, 120, 480, 900, 900]


def test_slack_text_cannot_mention_or_link():
    payload = delivery.slack_payload({"title": "<!channel> & <https://evil.example|click>", "message": "a > b",
                                      "action_url": "https://app.example/runs/1?x=|y>", "action_label": "Open <run>"})
    text = payload["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp;" in text and "a &gt; b" in text
    assert text.endswith("<https://app.example/runs/1?x=%7Cy%3E|Open &lt;run&gt;>")
    assert delivery.slack_payload({"title": "Hi", "message": None}) == {"text": "*Hi*"}


# ---------------------------------------------------------------- notify's input checks

@pytest.mark.parametrize("changes, problem", [
    ({"recipient_user_ids": []}, "recipient"),
    ({"channels": ("IN_APP", "PIGEON")}, "channels"),
    ({"channels": ()}, "channels"),
    ({"priority": "SOON"}, "priority"),
    ({"title": None}, "title"),
    ({"title": None, "template_id": "user_invited", "template_variables": {"workspace": "A"}}, "inviter"),
    ({"max_retry_count": 4}, "max_retry_count"),
    ({"max_retry_count": -1}, "max_retry_count"),
])
def test_notify_refuses_bad_input_before_touching_anything(monkeypatch, changes, problem):
    def untouchable(*args, **kwargs):
        raise AssertionError("nothing may be written or queued")

    monkeypatch.setattr(service.db, "tenant_transaction", untouchable)
    monkeypatch.setattr(service, "enqueue", untouchable)
    arguments = {"recipient_user_ids": [USER], "category": "system", "title": "Hello", **changes}
    with pytest.raises(ValidationFailed, match=problem):
        service.notify(TENANT, **arguments)


def test_enqueue_sends_urgent_deliveries_alone_and_first(monkeypatch):
    calls: list[tuple[str, int]] = []

    class Queue:
        def send_message(self, QueueUrl, MessageBody):  # noqa: N803 (boto3 names)
            calls.append(("single", json.loads(MessageBody)["id"]))

        def send_message_batch(self, QueueUrl, Entries):  # noqa: N803
            calls.append(("batch", len(Entries)))
            return {"Successful": Entries}

    monkeypatch.setattr(service, "_queue", Queue)
    monkeypatch.setattr(service, "get_settings", lambda: SimpleNamespace(notifications_queue_url="http://q"))
    rows = [{"id": f"n{i}", "priority_level": "NORMAL"} for i in range(23)] + [{"id": "u", "priority_level": "URGENT"}]
    service.enqueue(TENANT, rows)
    assert calls == [("single", "u"), ("batch", 10), ("batch", 10), ("batch", 3)]


# ---------------------------------------------------------------- the queue consumer

def _consumer():
    spec = importlib.util.spec_from_file_location("notifications_delivery_app_unit",
                                                  ROOT / "functions" / "notifications_delivery" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(message_id: str, receive_count: int = 1) -> dict:
    return {"messageId": message_id, "receiptHandle": f"rh-{message_id}",
            "body": json.dumps({"tenant_id": TENANT, "id": message_id}),
            "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1",
                           "SenderId": "x", "ApproximateFirstReceiveTimestamp": "1"},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}


def test_consumer_reports_only_failed_records_and_delays_their_retry(monkeypatch):
    app = _consumer()
    seen, delays = [], []

    def deliver(tenant_id, row_id, receive_count=1):
        seen.append((row_id, receive_count))
        if row_id == "fails":
            raise delivery.DeliveryError("503")
        if row_id == "gone-tenant":
            raise NotFound("tenant not found")
        return "DELIVERED"

    monkeypatch.setattr(app, "deliver", deliver)
    monkeypatch.setattr(app, "backoff_seconds", lambda n: 7 * n)
    monkeypatch.setattr(app, "_delay_next_attempt", lambda record, seconds: delays.append((record.message_id, seconds)))
    event = {"Records": [_record("ok"), _record("fails", receive_count=3), _record("gone-tenant")]}
    result = app.process_partial_response(event=event, record_handler=app.record_handler, processor=app.processor,
                                          context=None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "fails"}]}
    assert seen == [("ok", 1), ("fails", 3), ("gone-tenant", 1)]
    assert delays == [("fails", 21)]


def test_where_a_notification_was_read():
    from funnel.platform.principal import Principal

    user = Principal(TENANT, USER, "member", ip="203.0.113.7")
    assert service.reader(user, "Mozilla/5.0 (Linux; Android 14) Mobile Safari") == (
        "203.0.113.7", "Mozilla/5.0 (Linux; Android 14) Mobile Safari", "MOBILE")
    assert service.reader(user, "Mozilla/5.0 (Windows NT 10.0; Win64; x64)")[2] == "WEB"
    assert service.reader(user, None) == ("203.0.113.7", None, "OTHER")
    assert service.reader(Principal(TENANT, USER, "member", api_key_id="k1"), "python-httpx/0.27")[2] == "API"
    assert len(service.reader(user, "x" * 900)[1]) == 500


# ---------------------------------------------------------------- the template agrees with the code

def test_queue_budget_and_permissions_match_the_retry_design():
    from funnel_dev.template import load_yaml

    resources = load_yaml(ROOT / "template.yaml")["Resources"]
    queue = resources["NotificationsQueue"]["Properties"]
    # One receive per attempt: the first and MAX_RETRY_COUNT retries, then the DLQ.
    assert queue["RedrivePolicy"]["maxReceiveCount"] == service.MAX_RETRY_COUNT + 1
    function = resources["NotificationsDeliveryFunction"]["Properties"]
    statements = [s for p in function["Policies"] if isinstance(p, dict) for s in p.get("Statement", [])]
    assert any(s["Action"] == "sqs:ChangeMessageVisibility" for s in statements), "backoff needs it"
    timeout = function["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert delivery.HTTP_TIMEOUT_SECONDS < timeout
    assert function["Events"]["Notifications"]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_email_carries_the_action_link(monkeypatch):
    sent = []

    class Ses:
        def send_email(self, **request):
            sent.append(request)
            return {"MessageId": "m-1"}

    monkeypatch.setattr(delivery, "_ses_client", Ses)
    monkeypatch.setattr(delivery, "get_settings", lambda: SimpleNamespace(ses_from_address="no-reply@funnel.test",
                                                                         ses_configuration_set=None))
    row = {"title": "Run failed", "message": "<p>Step <b>publish</b></p>", "message_format": "HTML",
           "action_url": "https://app.example/runs/1?a=1&b=2", "action_label": "Resume <now>",
           "recipient_email": "ann@example.com"}
    assert delivery._send_email(row) == "m-1"
    [request] = sent
    body = request["Content"]["Simple"]["Body"]
    assert request["Destination"] == {"ToAddresses": ["ann@example.com"]} and "ConfigurationSetName" not in request
    assert body["Text"]["Data"].endswith("Resume <now>: https://app.example/runs/1?a=1&b=2")
    assert body["Html"]["Data"].endswith('<a href="https://app.example/runs/1?a=1&amp;b=2">Resume &lt;now&gt;</a></p>')


def test_a_queue_outage_leaves_the_rows_for_the_sweep_without_failing_the_caller(monkeypatch):
    from contextlib import contextmanager

    executed = []

    class Conn:
        def execute(self, sql, params=()):
            executed.append((sql, params))

    @contextmanager
    def transaction(tenant_id):
        yield Conn()

    def queue_down(tenant_id, rows):
        raise RuntimeError("SQS unavailable")

    monkeypatch.setattr(service, "enqueue", queue_down)
    monkeypatch.setattr(service.db, "tenant_transaction", transaction)
    assert service._enqueue_or_release(TENANT, [{"id": "n1"}, {"id": "n2"}]) is False
    [(sql, params)] = executed
    assert "queued_at = NULL" in sql and params == (["n1", "n2"],)
