"""Delivery through the local runtime: the notifications queue, its poller, retries, the DLQ."""
from __future__ import annotations

import json
import time
from datetime import date, timedelta

import pytest

from funnel import db
from funnel.notifications import service, signing
from tests.support.receivers import Receiver
from tests.support.tenants import new_pooled_tenant
from tests.support.waiting import wait_until


@pytest.fixture
def tenant(runtime):
    return new_pooled_tenant()


def _notification(tenant_id: str, row_id) -> dict:
    with db.tenant_transaction(tenant_id) as conn:
        return conn.execute("SELECT * FROM notifications WHERE id = %s", (row_id,)).fetchone()


def _wait_for(tenant_id: str, row_id, statuses=("DELIVERED", "FAILED"), timeout: float = 30.0) -> dict:
    return wait_until(lambda: _notification(tenant_id, row_id), lambda row: row["delivery_status"] in statuses,
                      timeout, f"notification not {'/'.join(statuses)}", interval=0.05)


def _channel(api, tenant, kind: str, url: str) -> dict:
    response = api.put(f"/v1/notification-channels/{kind}", headers=tenant.headers, json={"url": url})
    assert response.status_code == 200, response.text
    return response.json()


def test_slack_that_fails_twice_is_retried_and_delivered_once(api, tenant):
    with Receiver(fail_first=2) as slack:
        _channel(api, tenant, "SLACK", slack.url)
        [row] = service.notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="content.run_failed",
                               title="Run failed", body="step publish failed", channels=("SLACK",))
        delivered = _wait_for(tenant.tenant_id, row["id"])
    assert delivered["delivery_status"] == "DELIVERED" and delivered["retry_count"] == 2
    assert delivered["last_retry_at"] is not None and delivered["error_message"] is None
    assert len(slack.requests) == 3
    assert json.loads(slack.requests[-1].body)["text"].startswith("*Run failed*")


def test_signed_webhook_delivery_verifies_with_the_channel_secret(api, tenant):
    with Receiver(fail_first=2) as endpoint:
        secret = _channel(api, tenant, "WEBHOOK", endpoint.url)["signing_secret"]
        [row] = service.notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="outreach.task",
                               title="Task finished", channels=("WEBHOOK",), related_entity_type="task",
                               related_entity_id="t-1")
        delivered = _wait_for(tenant.tenant_id, row["id"])
    assert delivered["delivery_status"] == "DELIVERED" and delivered["retry_count"] == 2
    request = endpoint.requests[-1]
    headers = request.headers
    assert signing.verify(secret, headers["funnel-timestamp"], headers["funnel-signature"], request.body)
    assert not signing.verify(secret, headers["funnel-timestamp"], headers["funnel-signature"], request.body + b" ")
    assert not signing.verify("whsec_wrong", headers["funnel-timestamp"], headers["funnel-signature"], request.body)
    stale = int(headers["funnel-timestamp"]) - 3600
    assert not signing.verify(secret, str(stale), signing.sign(secret, stale, request.body), request.body)
    payload = json.loads(request.body)
    assert payload["notification_id"] == row["notification_id"] and payload["related_entity"]["id"] == "t-1"


def test_a_receiver_that_always_fails_ends_failed_in_the_dlq(runtime, api, tenant):
    with Receiver(always_fail=True) as endpoint:
        _channel(api, tenant, "WEBHOOK", endpoint.url)
        [row] = service.notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="system",
                               title="Never arrives", channels=("WEBHOOK",))
        failed = _wait_for(tenant.tenant_id, row["id"], statuses=("FAILED",))
        assert failed["retry_count"] == 3 and "answered 503" in failed["error_message"]
        assert len(endpoint.requests) == 4  # the first attempt and 3 retries
        sqs = runtime.client("sqs")
        dlq = runtime.queue_urls["NotificationsDeadLetterQueue"]
        deadline, bodies = time.monotonic() + 20, []
        while time.monotonic() < deadline and not any(b.get("id") == str(row["id"]) for b in bodies):
            for message in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1).get("Messages", []):
                bodies.append(json.loads(message["Body"]))
        assert any(b.get("id") == str(row["id"]) for b in bodies), "the failed delivery is not in the DLQ"
        stats = {s["delivery_method"]: s for s in
                 api.get("/v1/admin/notifications/stats", headers=tenant.headers).json()["channels"]}
        assert stats["WEBHOOK"]["failed"] >= 1 and stats["WEBHOOK"]["retries"] >= 3
        endpoint.always_fail = False
        resent = api.post(f"/v1/admin/notifications/{row['id']}/resend", headers=tenant.headers)
        assert resent.status_code == 200, resent.text
        assert _wait_for(tenant.tenant_id, row["id"])["delivery_status"] == "DELIVERED"


def _take_from_dlq(runtime, row_id, timeout: float = 20.0) -> dict:
    """Receive the row's message from the DLQ and remove it (what a redrive moves)."""
    sqs, dlq = runtime.client("sqs"), runtime.queue_urls["NotificationsDeadLetterQueue"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=1,
                                           WaitTimeSeconds=1).get("Messages", []):
            if json.loads(message["Body"]).get("id") == str(row_id):
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
                return message
    raise AssertionError("the failed delivery is not in the DLQ")


def test_an_operator_redrive_from_the_dlq_delivers_a_failed_notification(runtime, api, tenant):
    with Receiver(always_fail=True) as endpoint:
        _channel(api, tenant, "SLACK", endpoint.url)
        [row] = service.notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="system",
                               title="Eventually", channels=("SLACK",))
        assert _wait_for(tenant.tenant_id, row["id"], statuses=("FAILED",))["retry_count"] == 3
        message = _take_from_dlq(runtime, row["id"])
        # The receiver is fixed; the operator moves the message back (start-message-move-task in AWS).
        endpoint.always_fail = False
        runtime.client("sqs").send_message(QueueUrl=runtime.queue_urls["NotificationsQueue"],
                                           MessageBody=message["Body"])
        delivered = _wait_for(tenant.tenant_id, row["id"], statuses=("DELIVERED",))
    assert delivered["retry_count"] == 0 and delivered["error_message"] is None
    assert len(endpoint.requests) == 5  # 4 failed attempts, then the redriven one


def test_email_goes_through_ses_and_a_redelivered_message_sends_nothing_twice(runtime, tenant):
    from moto.ses.models import ses_backends

    [row] = service.notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="system",
                           title="Weekly summary", body="12 articles published.", channels=("EMAIL",))
    delivered = _wait_for(tenant.tenant_id, row["id"])
    assert delivered["delivery_status"] == "DELIVERED" and delivered["external_message_id"]

    def sent_to_owner() -> int:
        backend = ses_backends["123456789012"]["us-east-1"]
        return sum(tenant.owner_email in str(m.destinations) and "Weekly summary" in str(m.subject)
                   for m in backend.sent_messages)

    assert sent_to_owner() == 1
    sqs = runtime.client("sqs")  # SQS delivers at least once: the same message again
    queue = runtime.queue_urls["NotificationsQueue"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"tenant_id": tenant.tenant_id, "id": str(row["id"])}))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the poller has consumed it
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        if not any(int(value) for value in attributes.values()):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the redelivered message was not consumed: {attributes}")
    assert sent_to_owner() == 1
    assert _wait_for(tenant.tenant_id, row["id"])["delivered_at"] == delivered["delivered_at"]


def _slack_notification_in_a_transaction(tenant, slack_url: str, title: str, before_commit=lambda conn, row: None):
    """A Slack channel and a notification to it written in the caller's transaction (``conn=``), which the
    service cannot queue itself; ``before_commit`` runs in that transaction too."""
    from funnel.notifications import channels
    from funnel.platform.principal import Principal

    with db.tenant_transaction(tenant.tenant_id) as conn:
        channels.save_channel(conn, Principal(tenant.tenant_id, tenant.owner_id, "owner"), "SLACK", slack_url, None)
        [row] = service.notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="system",
                               title=title, channels=("SLACK",), conn=conn)
        before_commit(conn, row)
    return row


def test_rows_written_in_a_callers_transaction_are_queued_by_the_sweep(runtime, tenant):
    with Receiver() as slack:
        row = _slack_notification_in_a_transaction(tenant, slack.url, "After commit")
        time.sleep(0.5)  # nothing queues it meanwhile
        assert _wait_for(tenant.tenant_id, row["id"], statuses=("PENDING",))["delivery_status"] == "PENDING"
        assert service.dispatch_pending(tenant.tenant_id) == 1
        assert service.dispatch_pending(tenant.tenant_id) == 0  # claimed: queued once, not on every sweep
        assert _wait_for(tenant.tenant_id, row["id"])["delivery_status"] == "DELIVERED"
        assert len(slack.requests) == 1


def test_the_sweep_requeues_a_pending_delivery_whose_message_was_lost(runtime, tenant):
    with Receiver() as slack:
        row = _slack_notification_in_a_transaction(  # as if queued 20 minutes ago and the message never arrived
            tenant, slack.url, "Lost message", lambda conn, row: conn.execute(
                "UPDATE notifications SET queued_at = now() - interval '20 minutes' WHERE id = %s", (row["id"],)))
        result = runtime.invoke("NotificationsCleanupFunction", {})
        delivered = _wait_for(tenant.tenant_id, row["id"])
        # requeued by this sweep, or by the runtime's own schedule of the same function ticking just before it
        # (both claim the row: queued_at moves from 20 minutes ago to now)
        assert result["queued"] >= 1 or delivered["queued_at"] > row["created_at"]
        assert delivered["delivery_status"] == "DELIVERED"
        assert len(slack.requests) == 1


def test_a_delivery_past_its_expiry_date_is_cancelled_not_sent(runtime, api, tenant):
    with Receiver() as slack:
        _channel(api, tenant, "SLACK", slack.url)
        [row] = service.notify(tenant.tenant_id, recipient_user_ids=[tenant.owner_id], category="system",
                               title="Yesterday's news", channels=("SLACK",),
                               expiry_date=date.today() - timedelta(days=1))
        cancelled = _wait_for(tenant.tenant_id, row["id"], statuses=("CANCELLED", "DELIVERED"))
    assert cancelled["delivery_status"] == "CANCELLED" and "expired" in cancelled["error_message"]
    assert slack.requests == []
