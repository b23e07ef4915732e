"""The ``outreach_store`` fixture: a FakeOutreachStore (fake_store.py) in place of the outreach store modules, with
a transaction that opens nothing, the do-not-contact list as a dict and audit records as a list."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from funnel import db
from funnel.billing import limits
from funnel.outreach import contacts, pipeline, safety, tasks, worker
from funnel.platform import audit, llm, runs, suppression
from tests.support.directory import install_fake_directory
from tests.unit.outreach.fake_store import FakeOutreachStore


@pytest.fixture
def outreach_store(monkeypatch):
    """A FakeOutreachStore installed in place of the outreach store modules, the do-not-contact list and audit."""
    store = FakeOutreachStore()

    @contextmanager
    def transaction(tenant_id):
        yield object()

    monkeypatch.setattr(db, "tenant_transaction", transaction)
    for module, names in ((contacts, ("store",)), (tasks, ("store", "store_contacts")), (pipeline, ("store",)),
                          (safety, ("store_tasks", "store_contacts")), (worker, ("store_tasks", "store_browser"))):
        for name in names:
            monkeypatch.setattr(module, name, store)
    monkeypatch.setattr(suppression, "is_suppressed", store.is_suppressed)
    monkeypatch.setattr(llm, "tenant_ai_settings", store.tenant_ai_settings)
    monkeypatch.setattr(runs, "count_item_done", store.count_item_done)
    monkeypatch.setattr(audit, "record", lambda conn, principal, action, *args, **kwargs: store.audit.append(action))
    store.directory = install_fake_directory(monkeypatch)  # the send gate reads it (verified unless listed)
    install_plan_allowance(monkeypatch, store)
    store.notified = []  # contacts' notifications to an import's owner: (user ids, title, body)
    monkeypatch.setattr(contacts, "notify", lambda tenant_id, *, recipient_user_ids, title, body, **kwargs:
                        store.notified.append((recipient_user_ids, title, body)))
    return store


class FormSendsUsedUp:
    detail = "the plan's form_sends are used up this month"


def install_plan_allowance(monkeypatch, store) -> None:
    """The plan's form sends (``funnel.billing.limits``) as a number on the store: ``form_sends_left`` (None:
    unlimited) and ``form_sends_taken`` (taken less given back). The real counters are tests/integration/billing's."""
    store.form_sends_left, store.form_sends_taken = None, 0

    def take(conn, tenant_id, metric, amount=1):
        assert metric == "form_sends"
        if store.form_sends_left is not None:
            if store.form_sends_left < amount:
                return FormSendsUsedUp()
            store.form_sends_left -= amount
        store.form_sends_taken += amount
        return None

    def give_back(conn, metric, amount=1):
        assert metric == "form_sends"
        store.form_sends_taken -= amount
        if store.form_sends_left is not None:
            store.form_sends_left += amount

    monkeypatch.setattr(limits, "take", take)
    monkeypatch.setattr(limits, "give_back", give_back)
    store.subscription_refusal = None  # why the subscription refuses sending (None: it allows it)
    monkeypatch.setattr(limits, "subscription_allows_use", lambda tenant_id: store.subscription_refusal)
    monkeypatch.setattr(limits, "check_subscription", lambda tenant_id: None)
    monkeypatch.setattr(limits, "check_plan_allows", lambda tenant_id, metric: None)
