"""Fixtures of the SSRF pinning tests (platform fetchers, the browser's egress proxy): a private listener that
a rebinding name would reach, and the resolver that rebinds (tests/support/network.py)."""
from __future__ import annotations

import pytest

from tests.support.network import Listener, rebind


@pytest.fixture
def listener():
    with Listener() as server:
        yield server


@pytest.fixture
def rebinding_dns(monkeypatch):
    return rebind(monkeypatch)
