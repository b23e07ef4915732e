"""The fake store the rules' unit tests run on keeps up with the real store modules: every public function of
store_contacts, store_tasks and store_browser has a fake (a renamed or new store function fails here first)."""
from __future__ import annotations

import inspect

import pytest

from funnel.outreach import store_browser, store_contacts, store_tasks
from tests.unit.outreach.fake_store import FakeOutreachStore

# Listing a page (keyset pagination over the real database) is not a rule: the fake leaves these out.
NOT_FAKED = {"contacts_page", "tasks_page", "targets_page"}


@pytest.mark.parametrize("module", [store_contacts, store_tasks, store_browser], ids=lambda m: m.__name__)
def test_every_store_function_has_a_fake(module):
    functions = {name for name, member in inspect.getmembers(module, inspect.isfunction)
                 if member.__module__ == module.__name__ and not name.startswith("_")}
    assert functions - NOT_FAKED - set(dir(FakeOutreachStore)) == set()
