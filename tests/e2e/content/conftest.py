"""Fixtures for the content e2e tests: a real WordPress, product pages on
127.0.0.1, tenants whose pipeline steps use the offline model, helpers."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.content.helpers import scripted_answer, use_models
from tests.support import wordpress as wp_support
from tests.support.network import LocalHTTPServer, page_handler
from tests.support.openai_server import OpenAIServer

PRODUCT_PAGE = """<!doctype html><html><head><title>AcmeCRM - pipeline CRM for small sales teams</title>
<meta name="description" content="AcmeCRM keeps every deal moving."></head><body>
<nav>Home Pricing Login</nav><main><h1>AcmeCRM</h1>
<p>AcmeCRM is a pipeline CRM for small B2B sales teams. Track deals, automate follow-ups and forecast revenue.</p>
<p>Integrations with Gmail, Slack and Stripe. Reports that managers actually read.</p></main>
<footer>(c) Acme</footer><script>var tracking = 1;</script></body></html>"""


@pytest.fixture(scope="session")
def wordpress(tmp_path_factory):
    reason = wp_support.available()
    if reason:
        pytest.skip(f"real WordPress unavailable: {reason}")
    site = wp_support.LocalWordPress(tmp_path_factory.mktemp("wordpress")).start()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def product_site():
    with LocalHTTPServer(page_handler(PRODUCT_PAGE.encode())) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.fixture
def tenant(runtime, api):
    from tests.support.tenants import new_pooled_tenant

    handle = new_pooled_tenant()
    use_models(api, handle, "offline")
    return handle


@pytest.fixture
def scripted_provider(runtime):
    """A provider in the control registry whose endpoint is a local OpenAI-compatible server."""
    from funnel import db
    from funnel.platform import llm, secrets
    from funnel.settings import get_settings

    server = OpenAIServer(responder=scripted_answer).start()
    provider = f"scripted{uuid.uuid4().hex[:6]}"
    control = db.database_name(get_settings().control_database_url)
    with db.admin_connect(control) as conn:
        conn.execute("INSERT INTO llm_providers (id, display_name, api_base_url, api_key_name, is_offline) "
                     "VALUES (%s, 'Scripted test server', %s, 'scripted', false)", (provider, server.url))
        conn.execute("INSERT INTO llm_models (provider_id, model_name, model_class, input_cost_per_mtok, "
                     "output_cost_per_mtok) VALUES (%s, 'scripted-1', 'standard', 1.0, 2.0)", (provider,))
    keys_secret = get_settings().llm_api_keys_secret_id
    sm = runtime.client("secretsmanager")
    keys = json.loads(sm.get_secret_value(SecretId=keys_secret)["SecretString"])
    sm.put_secret_value(SecretId=keys_secret, SecretString=json.dumps({**keys, "scripted": "sk-test"}))
    secrets.reset_clients()
    llm.forget_registry()
    yield provider, server
    server.stop()
