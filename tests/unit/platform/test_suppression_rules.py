"""The do-not-contact list's rules (``funnel.platform.suppression``) over an in-memory fake of
``store_suppression``: values are stored and matched normalised, an e-mail also matches its domain, empty or
unknown entries are refused, and only manual entries can be removed. No database."""
from __future__ import annotations

import pytest

from funnel.platform import suppression
from funnel.platform.errors import Conflict, NotFound, ValidationFailed

CONN = object()  # the fake ignores the connection


class FakeStore:
    """``store_suppression`` over ``entries``: (kind, value) -> row, as the table's unique key has it."""

    def __init__(self):
        self.entries: dict[tuple[str, str], dict] = {}
        self.lookups: list[list[tuple[str, str]]] = []

    def upsert(self, conn, kind, value, reason, source):
        row = self.entries.get((kind, value))
        if row is None:
            row = self.entries[(kind, value)] = {"id": f"s-{len(self.entries) + 1}", "kind": kind, "value": value,
                                                 "source": source}
        row["reason"] = reason
        return dict(row)

    def first_match(self, conn, candidates):
        self.lookups.append(candidates)
        return next(({"kind": kind, "reason": self.entries[(kind, value)]["reason"]}
                     for kind, value in candidates if (kind, value) in self.entries), None)

    def select(self, conn, suppression_id):
        return next((dict(row) for row in self.entries.values() if row["id"] == suppression_id), None)

    def delete(self, conn, suppression_id):
        self.entries = {key: row for key, row in self.entries.items() if row["id"] != suppression_id}


@pytest.fixture
def store(monkeypatch):
    fake = FakeStore()
    monkeypatch.setattr(suppression, "store_suppression", fake)
    return fake


def test_values_are_stored_normalised(store):
    assert suppression.suppress(CONN, "email", "  CEO@Example.COM ", "unsubscribed")["value"] == "ceo@example.com"
    assert suppression.suppress(CONN, "domain", "https://www.Blocked.example/contact", "manual")["value"] == \
        "blocked.example"
    assert suppression.suppress(CONN, "phone", "03-1111-2222", "manual")["value"] == "0311112222"
    assert suppression.suppress(CONN, "corporate_number", "1234-5678-90123", "manual")["value"] == "1234567890123"


def test_suppressing_again_keeps_one_entry_with_the_new_reason(store):
    first = suppression.suppress(CONN, "email", "ann@example.com", "manual", "api:u1")
    again = suppression.suppress(CONN, "email", "ANN@example.com", "hard_bounce", "ses")
    assert again["id"] == first["id"] and again["reason"] == "hard_bounce" and len(store.entries) == 1


@pytest.mark.parametrize(("kind", "value", "reason"), [
    ("twitter", "@ann", "manual"),            # unknown kind
    ("email", "ann@example.com", "annoyed"),  # unknown reason
    ("phone", "no digits", "manual"),         # nothing left after normalising
    ("email", "   ", "manual"),
])
def test_unknown_or_empty_entries_are_refused(store, kind, value, reason):
    with pytest.raises(ValidationFailed):
        suppression.suppress(CONN, kind, value, reason)
    assert not store.entries


def test_an_email_matches_its_own_entry_whatever_its_case(store):
    suppression.suppress(CONN, "email", "ann@example.com", "unsubscribed")
    assert suppression.is_suppressed(CONN, email="Ann@EXAMPLE.com") == \
        "email on the do-not-contact list (unsubscribed)"
    assert suppression.is_suppressed(CONN, email="bob@example.com") is None


def test_an_email_also_matches_its_domain(store):
    suppression.suppress(CONN, "domain", "www.blocked.example", "do_not_contact")
    assert suppression.is_suppressed(CONN, email="anyone@Blocked.example") == \
        "domain on the do-not-contact list (do_not_contact)"
    assert suppression.is_suppressed(CONN, email="anyone@open.example") is None


def test_a_domain_matches_however_the_contact_wrote_it(store):
    suppression.suppress(CONN, "domain", "blocked.example", "manual")
    for written in ("blocked.example", "https://www.blocked.example/form?x=1", "WWW.BLOCKED.EXAMPLE"):
        assert suppression.is_suppressed(CONN, domain=written), written


def test_a_contact_matches_on_any_of_its_details(store):
    suppression.suppress(CONN, "phone", "03-1111-2222", "manual")
    assert suppression.is_suppressed(CONN, email="ann@example.com", domain="example.com", phone="(03) 1111 2222")
    assert suppression.is_suppressed(CONN, email="ann@example.com", phone="03-9999-0000") is None


def test_a_contact_with_nothing_to_match_is_not_looked_up(store):
    assert suppression.is_suppressed(CONN) is None
    assert suppression.is_suppressed(CONN, phone="n/a", email="") is None
    assert store.lookups == []


def test_only_manual_entries_can_be_removed(store):
    manual = suppression.suppress(CONN, "email", "ann@example.com", "manual")
    unsubscribed = suppression.suppress(CONN, "email", "bob@example.com", "unsubscribed")
    assert suppression.remove_suppression(CONN, manual["id"])["value"] == "ann@example.com"
    with pytest.raises(Conflict):
        suppression.remove_suppression(CONN, unsubscribed["id"])
    assert list(store.entries) == [("email", "bob@example.com")]
    with pytest.raises(NotFound):
        suppression.remove_suppression(CONN, manual["id"])
