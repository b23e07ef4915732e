"""The delivery consumer's decisions (``delivery.deliver``) over an in-memory fake of the store functions it
calls: expiry cancels, an already delivered row is acknowledged without sending, a failed attempt is a retry
until ``max_retry_count`` retries have failed, and a FAILED row is retried again only when redriven (first
receive). No database: the fake holds the rows in a dict."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from funnel.notifications import delivery

TENANT = "7d1f3f2e-0000-4000-8000-000000000000"
ROW = "0b6f1c1e-2222-4222-8222-222222222222"


class FakeStore:
    """The store functions ``deliver`` needs, over ``rows`` (id -> the row ``lock_for_delivery`` returns)."""

    def __init__(self, **row):
        self.rows = {ROW: {"id": ROW, "delivery_status": "PENDING", "is_deleted": False, "expired": False,
                           "retry_count": 0, "max_retry_count": 3, "delivery_method": "EMAIL",
                           "recipient_email": "ann@example.com", "error_message": None,
                           "created_at": datetime(2025, 1, 1, tzinfo=UTC), **row}}

    def lock_for_delivery(self, conn, notification_id):
        row = self.rows.get(notification_id)
        return dict(row) if row else None

    def _set(self, notification_id, **changes):
        self.rows[notification_id].update(changes)
        return dict(self.rows[notification_id])

    def cancel(self, conn, notification_id, reason):
        self._set(notification_id, delivery_status="CANCELLED", error_message=reason)

    def restart_retries(self, conn, notification_id):
        row = self._set(notification_id, delivery_status="RETRYING", retry_count=0)
        row.pop("recipient_email")  # RETURNING * is the table's row only
        return row

    def mark_failed(self, conn, notification_id, error):
        self._set(notification_id, delivery_status="FAILED", error_message=error)

    def record_retry(self, conn, notification_id, error):
        row = self.rows[notification_id]
        self._set(notification_id, delivery_status="RETRYING", retry_count=row["retry_count"] + 1,
                  error_message=error)

    def mark_delivered(self, conn, notification_id, external_id):
        self._set(notification_id, delivery_status="DELIVERED", external_message_id=external_id, error_message=None)


@pytest.fixture
def fake(monkeypatch):
    """Install a FakeStore (and a transaction that opens nothing); ``fake.sent`` lists the rows sent."""
    def install(outcome="m-1", **row):
        store = FakeStore(**row)
        store.sent = []

        @contextmanager
        def transaction(tenant_id):
            yield object()

        def send(conn, tenant_id, row):
            store.sent.append(row)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        monkeypatch.setattr(delivery, "store", store)
        monkeypatch.setattr(delivery.db, "tenant_transaction", transaction)
        monkeypatch.setattr(delivery, "_send", send)
        return store
    return install


def test_a_sent_notification_is_delivered(fake):
    store = fake()
    assert delivery.deliver(TENANT, ROW) == "DELIVERED"
    assert store.rows[ROW]["delivery_status"] == "DELIVERED" and store.rows[ROW]["external_message_id"] == "m-1"
    assert len(store.sent) == 1


def test_an_expired_notification_is_cancelled_without_sending(fake):
    store = fake(expired=True)
    assert delivery.deliver(TENANT, ROW) == "CANCELLED"
    assert store.sent == []
    assert store.rows[ROW]["error_message"] == "expired before it could be delivered"


@pytest.mark.parametrize("row", [{"delivery_status": "DELIVERED"}, {"delivery_status": "CANCELLED"},
                                 {"is_deleted": True}])
def test_a_settled_or_deleted_row_is_acknowledged_without_sending(fake, row):
    store = fake(**row)
    assert delivery.deliver(TENANT, ROW) == store.rows[ROW]["delivery_status"]
    assert store.sent == []


def test_a_missing_or_locked_row_comes_back_later(fake):
    fake()
    with pytest.raises(delivery.RowNotVisible):
        delivery.deliver(TENANT, "ffffffff-ffff-4fff-8fff-ffffffffffff")


def test_failed_attempts_are_retries_until_max_retry_count_then_failed(fake):
    store = fake(outcome=RuntimeError("SES throttled"), max_retry_count=2)
    for expected_retries in (1, 2):
        with pytest.raises(delivery.DeliveryError) as raised:
            delivery.deliver(TENANT, ROW, receive_count=expected_retries)
        assert type(raised.value) is delivery.DeliveryError  # comes back after a backoff
        assert store.rows[ROW]["delivery_status"] == "RETRYING"
        assert store.rows[ROW]["retry_count"] == expected_retries
    with pytest.raises(delivery.NotDeliverable, match="SES throttled"):
        delivery.deliver(TENANT, ROW, receive_count=3)
    assert store.rows[ROW]["delivery_status"] == "FAILED" and store.rows[ROW]["retry_count"] == 2
    assert store.rows[ROW]["error_message"] == "RuntimeError: SES throttled"


def test_a_failed_row_is_retried_only_when_redriven(fake):
    store = fake(delivery_status="FAILED", retry_count=3)
    with pytest.raises(delivery.NotDeliverable):  # the same message again, on its way to the DLQ
        delivery.deliver(TENANT, ROW, receive_count=2)
    assert store.sent == [] and store.rows[ROW]["delivery_status"] == "FAILED"

    assert delivery.deliver(TENANT, ROW, receive_count=1) == "DELIVERED"  # a redriven message: a fresh round
    [sent] = store.sent
    assert sent["retry_count"] == 0 and sent["recipient_email"] == "ann@example.com"
