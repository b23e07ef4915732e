"""Idempotency-Key rules (``funnel.platform.idempotency``) over an in-memory fake of ``store_requests``: a retry
of the same request is answered from the stored response, the same key with another request is a 422, a retry
while the first is running a 409, and a server error releases the key. No database."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from funnel.platform import idempotency
from funnel.platform.errors import Conflict, ValidationFailed
from funnel.platform.idempotency import StoredResponse
from funnel.platform.principal import Principal

TENANT = "7d1f3f2e-0000-4000-8000-000000000000"
ANN = Principal(tenant_id=TENANT, user_id="u-ann", role="member")
BOB = Principal(tenant_id=TENANT, user_id="u-bob", role="member")


class FakeStore:
    """``store_requests``' key functions over ``keys``: (principal, key) -> row; ``age_hours`` ages them."""

    def __init__(self):
        self.keys: dict[tuple[str, str], dict] = {}
        self.age_hours: dict[tuple[str, str], float] = {}
        self.released_while_claiming = False  # the holder releases the key between a failed claim and its read

    def delete_expired_keys(self, conn, principal, max_age_hours):
        expired = [name for name in self.keys if name[0] == principal and self.age_hours.get(name, 0) > max_age_hours]
        for name in expired:
            del self.keys[name]

    def insert_key(self, conn, principal, key, method, path, request_hash):
        if (principal, key) in self.keys:
            return False
        self.keys[(principal, key)] = {"request_hash": request_hash, "status_code": None, "response_body": None,
                                       "content_type": None}
        return True

    def select_key(self, conn, principal, key):
        if self.released_while_claiming:
            self.released_while_claiming = False
            self.keys.pop((principal, key))
        row = self.keys.get((principal, key))
        return dict(row) if row else None

    def store_response(self, conn, principal, key, status_code, body, content_type):
        self.keys[(principal, key)].update(status_code=status_code, response_body=body, content_type=content_type)

    def delete_key(self, conn, principal, key):
        self.keys.pop((principal, key), None)


@pytest.fixture
def store(monkeypatch):
    fake = FakeStore()

    @contextmanager
    def transaction(tenant_id):
        assert tenant_id == TENANT
        yield object()

    monkeypatch.setattr(idempotency, "store_requests", fake)
    monkeypatch.setattr(idempotency.db, "tenant_transaction", transaction)
    return fake


def claim(principal=ANN, key="k-1", body=b'{"name": "a"}', path="/v1/things"):
    return idempotency.claim(principal, key, "POST", path, body)


def test_the_first_request_claims_the_key(store):
    assert claim() is None
    assert store.keys[("u-ann", "k-1")]["status_code"] is None


def test_a_retry_of_the_answered_request_gets_the_stored_response(store):
    claim()
    idempotency.complete(ANN, "k-1", 201, '{"id": "é"}'.encode(), "application/json")
    assert claim() == StoredResponse(201, '{"id": "é"}', "application/json")
    assert claim() == StoredResponse(201, '{"id": "é"}', "application/json")  # as often as it is retried


def test_a_client_error_is_replayed_too(store):
    claim()
    idempotency.complete(ANN, "k-1", 422, b'{"title": "bad"}', "application/problem+json")
    assert claim().status_code == 422


@pytest.mark.parametrize("other", [{"body": b'{"name": "b"}'}, {"path": "/v1/other"}])
def test_the_same_key_with_another_request_is_refused(store, other):
    claim()
    idempotency.complete(ANN, "k-1", 201, b"{}", "application/json")
    with pytest.raises(ValidationFailed, match="different request"):
        claim(**other)


def test_a_retry_while_the_first_request_runs_is_a_conflict(store):
    claim()
    with pytest.raises(Conflict, match="still being processed"):
        claim()


def test_a_server_error_releases_the_key_so_the_client_may_retry(store):
    claim()
    idempotency.complete(ANN, "k-1", 503, b"{}", "application/problem+json")
    assert ("u-ann", "k-1") not in store.keys
    assert claim() is None


def test_keys_belong_to_their_principal(store):
    claim(ANN)
    assert claim(BOB) is None


def test_keys_older_than_a_day_are_forgotten(store):
    claim()
    idempotency.complete(ANN, "k-1", 201, b"{}", "application/json")
    store.age_hours[("u-ann", "k-1")] = idempotency.KEEP_HOURS + 1
    assert claim(body=b"another request, a day later") is None


def test_a_key_released_between_claim_and_read_is_claimed_again(store):
    claim()
    store.released_while_claiming = True
    assert claim() is None
    assert store.keys[("u-ann", "k-1")]["status_code"] is None


@pytest.mark.parametrize("key", ["", "k" * (idempotency.MAX_KEY_LENGTH + 1)])
def test_a_key_must_have_1_to_255_characters(store, key):
    with pytest.raises(ValidationFailed, match="Idempotency-Key"):
        claim(key=key)
    assert not store.keys
