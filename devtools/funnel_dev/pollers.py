"""SQS pollers: a Lambda event source mapping per ``Type: SQS`` event of the template.

Each poller receives up to BatchSize messages, hands them to the function's
handler as one SQS event, and deletes only what succeeded. With
``ReportBatchItemFailures`` the handler's ``batchItemFailures`` name the failed
records; without it (or when the handler raises) the whole batch failed. Failed
messages are left alone: they become visible again after the queue's
visibility timeout, and moto moves a message to the queue's dead-letter queue
once it has been received ``maxReceiveCount`` times (RedrivePolicy), as SQS
does. With a time scale below 1 the visibility timeout of failed messages is
shortened by the same factor, so retries in tests take no wall time.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("funnel_dev.pollers")

Invoke = Callable[[str, dict], object]


def lambda_message_attributes(attributes: dict) -> dict:
    """SQS API MessageAttributes -> the shape Lambda puts in an SQS event record."""
    converted = {}
    for name, value in (attributes or {}).items():
        record = {"dataType": value["DataType"], "stringListValues": [], "binaryListValues": []}
        if "StringValue" in value:
            record["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            import base64

            record["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        converted[name] = record
    return converted


def sqs_event(messages: list[dict], queue_arn: str, region: str) -> dict:
    return {"Records": [{
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": lambda_message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    } for message in messages]}


def failed_message_ids(result: object, message_ids: list[str], report_batch_item_failures: bool) -> set[str]:
    """Which records Lambda would treat as failed for this handler result."""
    if not report_batch_item_failures or not isinstance(result, dict) or "batchItemFailures" not in result:
        return set()
    failures = result.get("batchItemFailures") or []
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in message_ids:
            return set(message_ids)  # an unknown or empty identifier fails the whole batch, as on AWS
        failed.add(identifier)
    return failed


class SqsPoller:
    def __init__(self, sqs_client, function_id: str, queue_url: str, queue_arn: str, batch_size: int,
                 report_batch_item_failures: bool, invoke: Invoke, time_scale: float = 1.0,
                 wait_seconds: int = 1, idle_sleep: float = 0.0, region: str = "us-east-1",
                 on_exit: Callable[[], None] | None = None):
        self.sqs = sqs_client
        self.function_id = function_id
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.batch_size = max(1, min(batch_size, 10))  # one ReceiveMessage returns at most 10
        self.report_batch_item_failures = report_batch_item_failures
        self.invoke = invoke
        self.time_scale = time_scale
        self.wait_seconds = wait_seconds
        self.idle_sleep = idle_sleep
        self.region = region
        self.on_exit = on_exit  # runs in the poller's thread as it ends (warm resources are per thread)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"funnel-sqs-{function_id}", daemon=True)
        self._visibility_timeout: int | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 60.0) -> None:
        """Wait for the poll loop to end (a batch being handled finishes first, up to ``timeout``)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("SQS poller for %s did not stop within %.0f s", self.function_id, timeout)

    def _queue_visibility_timeout(self) -> int:
        if self._visibility_timeout is None:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url,
                                                       AttributeNames=["VisibilityTimeout"])["Attributes"]
            self._visibility_timeout = int(attributes.get("VisibilityTimeout", 30))
        return self._visibility_timeout

    def _run(self) -> None:
        try:
            self._poll_until_stopped()
        finally:
            if self.on_exit is not None:
                try:
                    self.on_exit()
                except Exception:
                    log.exception("%s: shutting down its poller thread failed", self.function_id)

    def _poll_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                handled = self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("SQS poller for %s failed; retrying", self.function_id)
                self._stop.wait(1.0)
                continue
            if not handled and self.idle_sleep:
                self._stop.wait(self.idle_sleep)

    def poll_once(self) -> int:
        """Receive one batch and dispatch it; returns how many messages were received."""
        response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                            WaitTimeSeconds=self.wait_seconds, AttributeNames=["All"],
                                            MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"])
        messages = response.get("Messages", [])
        if not messages:
            return 0
        ids = [message["MessageId"] for message in messages]
        try:
            result = self.invoke(self.function_id, sqs_event(messages, self.queue_arn, self.region))
            failed = failed_message_ids(result, ids, self.report_batch_item_failures)
        except Exception:
            log.exception("%s failed a batch of %d from %s", self.function_id, len(messages), self.queue_url)
            failed = set(ids)
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        if succeeded:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(succeeded)])
        if failed and self.time_scale < 1.0:
            timeout = int(self._queue_visibility_timeout() * self.time_scale)
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": timeout}
                for index, m in enumerate(messages) if m["MessageId"] in failed])
        return len(messages)
