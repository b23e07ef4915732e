"""Make moto's in-process SQS safe for concurrent consumers.

moto's SQS backend mutates a queue's message list without a lock: a
``DeleteMessage`` rebuilds the list while a concurrent ``ReceiveMessage``
iterates it, so two pollers on one queue (what ``ScalingConfig.MaximumConcurrency``
asks for) fail with ``ValueError: list.remove(x): x not in list`` or
``KeyError`` from the pending set, and can hand the same message to both.
Real SQS has no such problem, so the local runtime serialises the backend's
queue operations behind one lock. A long poll does not hold the lock while it
waits: it polls without waiting under the lock and sleeps on the queue's own
condition between attempts, as moto itself does.

This only touches the local runtime's moto; production talks to SQS.
"""
from __future__ import annotations

import functools
import threading
import time

_lock = threading.RLock()
_installed = False

SERIALISED = ("send_message", "send_message_batch", "delete_message", "delete_message_batch",
              "change_message_visibility", "change_message_visibility_batch", "purge_queue", "delete_queue")


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.sqs.models import SQSBackend

    for name in SERIALISED:
        setattr(SQSBackend, name, _serialised(getattr(SQSBackend, name)))
    SQSBackend.receive_message = _receive_without_holding_the_lock_while_waiting(SQSBackend.receive_message)
    _installed = True


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


def _receive_without_holding_the_lock_while_waiting(receive):
    @functools.wraps(receive)
    def wrapper(self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names=None):
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:
            with _lock:
                received = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - time.monotonic()
            if received or remaining <= 0:
                return received
            queue = self.get_queue(queue_name)
            with queue._messages_lock:  # notified by add_message, so a new message wakes the poll at once
                queue._messages_lock.wait(timeout=min(remaining, 0.2))

    return wrapper
