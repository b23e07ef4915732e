"""The offline provider only where settings allow it (the local runtime sets FUNNEL_ALLOW_OFFLINE_LLM,
template.yaml never does): elsewhere a tenant admin cannot choose it (422) and a pipeline step that
resolves to it fails instead of publishing its placeholder text."""
from __future__ import annotations

import pytest

from tests.e2e.content.helpers import make_product, steps_by_name, wait_run


@pytest.fixture
def offline_disallowed(runtime, monkeypatch):
    """This process as a deployed stage sees it: the runtime's functions run in-process and share it."""
    from funnel.settings import reset_settings

    monkeypatch.setenv("FUNNEL_ALLOW_OFFLINE_LLM", "false")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_the_local_runtime_allows_the_offline_provider(runtime):
    from funnel.settings import get_settings

    assert get_settings().allow_offline_llm is True


def test_choosing_the_offline_provider_is_refused_where_not_allowed(runtime, api, tenant, offline_disallowed):
    response = api.put("/v1/llm/step-defaults/write_article", headers=tenant.headers,
                       json={"provider_id": "offline", "model_class": "standard"})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/offline-llm-not-allowed") and "offline" in problem["detail"]


def test_a_pipeline_step_on_the_offline_provider_fails_where_not_allowed(runtime, api, tenant, product_site,
                                                                          offline_disallowed):
    site = api.post("/v1/sites", headers=tenant.headers, json={   # tenant chose offline while it was allowed
        "slug": "unused", "wp_admin_url": "http://127.0.0.1:9/", "wp_username": "admin",
        "wp_api_token": "aaaa bbbb cccc dddd"}).json()
    product = make_product(api, tenant, site["id"], product_site + "/offline")
    started = api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers, json={"articles_count": 1})
    assert started.status_code == 202, started.text
    run = wait_run(api, tenant, started.json()["id"])
    assert run["status"] == "failed", run
    assert "offline" in run["error_message"] and "not allowed" in run["error_message"]
    analyze = steps_by_name(api, tenant, run["id"])[("analyze_product", "")]
    assert analyze["status"] == "failed" and analyze["retry_count"] == 0  # not retried: a retry cannot heal it
    articles = api.get("/v1/articles", headers=tenant.headers).json()["items"]
    assert articles == []
