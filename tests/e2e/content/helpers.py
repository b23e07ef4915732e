"""Helpers shared by the content e2e tests."""
from __future__ import annotations

import json

from tests.support.waiting import wait_until

PIPELINE_STEPS = ("analyze_product", "plan_cluster", "write_article", "generate_image")


def use_models(api, tenant, provider_id: str, model_class: str = "standard") -> None:
    for step in PIPELINE_STEPS:
        response = api.put(f"/v1/llm/step-defaults/{step}", headers=tenant.headers,
                           json={"provider_id": provider_id, "model_class": model_class})
        assert response.status_code == 200, response.text


def make_site(api, tenant, wordpress, **overrides) -> dict:
    import uuid

    body = {"slug": f"blog-{uuid.uuid4().hex[:8]}", "wp_admin_url": wordpress.base + "/wp-admin",
            "wp_username": wordpress.username, "wp_api_token": wordpress.app_password, **overrides}
    response = api.post("/v1/sites", headers=tenant.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def make_product(api, tenant, site_id, url, **overrides) -> dict:
    response = api.post("/v1/products", headers=tenant.headers,
                        json={"url": url, "site_id": site_id, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


def wait_run(api, tenant, run_id, statuses=("completed", "failed", "cancelled"), timeout=60.0) -> dict:
    return wait_until(lambda: api.get(f"/v1/runs/{run_id}", headers=tenant.headers).json(),
                      lambda run: run["status"] in statuses, timeout, f"run {run_id} not {'/'.join(statuses)}")


def steps_by_name(api, tenant, run_id) -> dict:
    items = api.get(f"/v1/runs/{run_id}/steps", headers=tenant.headers).json()["items"]
    return {(s["step"], s["item_key"]): s for s in items}


def scripted_answer(request: dict) -> str:
    """What the scripted provider answers for each pipeline step (it reads the step from the system prompt)."""
    system = request["messages"][0]["content"]
    if "analyze_product" in system:
        return json.dumps({"product_name": "AcmeCRM", "summary": "A CRM.", "persona": "sales leads",
                           "keywords": ["crm", "pipeline"]})
    if "plan_cluster" in system:
        return json.dumps({"pillar_keyword": "crm", "articles": [
            {"title": "What a CRM does", "keyword": "crm", "article_type": "article", "outline": ["Intro"]}]})
    if "write_article" in system:
        return json.dumps({"title": "What a CRM does", "meta_description": "CRM basics",
                           "html": "<h2>Intro</h2><p>Deals.</p><script>alert(1)</script>"})
    return json.dumps({"prompt": "a chart", "alt": "chart"})
