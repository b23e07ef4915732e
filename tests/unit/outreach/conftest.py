"""The ``outreach_store`` fixture: a FakeOutreachStore (fake_store.py) in place of the outreach store modules, with
a transaction that opens nothing, the do-not-contact list as a dict and audit records as a list."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from funnel import db
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
    store.notified = []  # contacts' notifications to an import's owner: (user ids, title, body)
    monkeypatch.setattr(contacts, "notify", lambda tenant_id, *, recipient_user_ids, title, body, **kwargs:
                        store.notified.append((recipient_user_ids, title, body)))
    return store
