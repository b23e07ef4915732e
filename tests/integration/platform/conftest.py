"""Fixtures of the platform's API tests: the app (over the session's local runtime), the contract every answer
is checked against, and a client calling from an address of its own."""
from __future__ import annotations

import pytest

from funnel.api.app import create_app
from tests.support.contract import ContractCheck, contract_client


@pytest.fixture(scope="module")
def app(runtime):
    return create_app()


@pytest.fixture(scope="module")
def contract(app):
    return ContractCheck(app.openapi())


@pytest.fixture
def client(app, contract):
    return contract_client(app, contract)
