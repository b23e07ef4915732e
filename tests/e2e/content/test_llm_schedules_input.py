"""LLM errors through the real openai SDK, schedules (EventBridge + duplicate firing), bad input."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.content.helpers import make_product, make_site, steps_by_name, use_models, wait_run
from tests.support.openai_server import Reply


@pytest.mark.wordpress
def test_llm_429_is_retried_through_the_sdk(runtime, api, tenant, wordpress, product_site, scripted_provider):
    provider, server = scripted_provider
    use_models(api, tenant, provider)
    site = make_site(api, tenant, wordpress)
    product = make_product(api, tenant, site["id"], product_site + "/llm", image_style="none")
    server.script(Reply.error(429))
    started = api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers, json={"articles_count": 1})
    run = wait_run(api, tenant, started.json()["id"])
    assert run["status"] == "completed", run
    steps = steps_by_name(api, tenant, run["id"])
    analyze = steps[("analyze_product", "")]
    assert analyze["retry_count"] == 1 and analyze["llm_model"] == f"{provider}/scripted-1"
    assert float(analyze["cost_usd"]) > 0 and analyze["token_usage"]["prompt_tokens"] > 0
    article = next(s for (name, _), s in steps.items() if name == "write_article")
    content = api.get(f"/v1/articles/{article['item_key']}", headers=tenant.headers).json()["content"]
    assert "<script" not in content and "<h2>Intro</h2>" in content


def test_persistent_provider_error_fails_naming_the_model(runtime, api, tenant, product_site, scripted_provider):
    provider, server = scripted_provider
    use_models(api, tenant, provider)
    site = api.post("/v1/sites", headers=tenant.headers, json={
        "slug": "unused", "wp_admin_url": "http://127.0.0.1:9/", "wp_username": "admin",
        "wp_api_token": "aaaa bbbb cccc dddd"}).json()
    product = make_product(api, tenant, site["id"], product_site + "/broken")
    server.script(*[Reply.error(500, "model overloaded")] * 4)
    started = api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers, json={"articles_count": 1})
    run = wait_run(api, tenant, started.json()["id"])
    assert run["status"] == "failed"
    assert f"{provider}/scripted-1" in run["error_message"] and "500" in run["error_message"]
    assert steps_by_name(api, tenant, run["id"])[("analyze_product", "")]["retry_count"] == 3
    assert len(server.requests) == 4


@pytest.mark.wordpress
def test_schedule_lifecycle_and_duplicate_firing_starts_one_run(runtime, api, tenant, wordpress, product_site):
    from funnel.settings import get_settings

    site = make_site(api, tenant, wordpress)
    product = make_product(api, tenant, site["id"], product_site + "/cron", image_style="none")
    created = api.post("/v1/schedules", headers=tenant.headers, json={
        "site_id": site["id"], "product_id": product["id"], "cron_expression": "0 9 * * 1,3,5",
        "articles_per_run": 1, "publish_mode": "draft"})
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["timezone"] == "Asia/Tokyo" and schedule["next_run_at"]
    scheduler = runtime.client("scheduler")
    remote = scheduler.get_schedule(Name=f"content-{schedule['id']}", GroupName=get_settings().scheduler_group)
    assert remote["ScheduleExpression"] == "cron(0 9 ? * MON,WED,FRI *)"
    assert remote["ScheduleExpressionTimezone"] == "Asia/Tokyo"
    event = json.loads(remote["Target"]["Input"])
    event["scheduled_time"] = "2026-11-23T00:00:00Z"

    first = runtime.invoke("ContentScheduleFunction", event)
    second = runtime.invoke("ContentScheduleFunction", event)
    assert first["status"] == "started" and second["status"] == "duplicate"
    jobs = api.get(f"/v1/schedules/{schedule['id']}/jobs", headers=tenant.headers).json()["items"]
    assert len(jobs) == 1 and jobs[0]["run_id"] == first["run_id"]
    run = wait_run(api, tenant, first["run_id"])
    assert run["status"] == "completed", run
    jobs = api.get(f"/v1/schedules/{schedule['id']}/jobs", headers=tenant.headers).json()["items"]
    assert jobs[0]["status"] == "completed" and jobs[0]["articles_generated"] == 1

    updated = api.patch(f"/v1/schedules/{schedule['id']}", headers=tenant.headers,
                        json={"cron_expression": "30 7 1 * *", "is_active": False})
    assert updated.status_code == 200 and updated.json()["next_run_at"] is None
    remote = scheduler.get_schedule(Name=f"content-{schedule['id']}", GroupName=get_settings().scheduler_group)
    assert remote["State"] == "DISABLED" and remote["ScheduleExpression"] == "cron(30 7 1 * ? *)"
    assert api.delete(f"/v1/schedules/{schedule['id']}", headers=tenant.headers).status_code == 204
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=f"content-{schedule['id']}", GroupName=get_settings().scheduler_group)


def test_bad_input_is_a_4xx_problem_and_creates_nothing(runtime, api, tenant, product_site):
    headers = tenant.headers
    site = api.post("/v1/sites", headers=headers, json={"slug": "no-token", "wp_admin_url": "http://127.0.0.1:9/"})
    assert site.status_code == 201 and site.json()["status"] == "provisioning"
    site_id = site.json()["id"]
    for url in ("ftp://example.com/product", "http://10.0.0.8/product", "http://169.254.169.254/latest"):
        response = api.post("/v1/products", headers=headers, json={"url": url, "site_id": site_id})
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert api.get("/v1/products", headers=headers).json()["items"] == []

    product = make_product(api, tenant, site_id, product_site + "/x")
    response = api.post(f"/v1/products/{product['id']}/generate", headers=headers, json={"articles_count": 1})
    assert response.status_code == 422 and "application password" in response.json()["detail"]
    assert api.get("/v1/runs", headers=headers).json()["items"] == []

    for cron in ("61 * * * *", "* * *", "0 9 * * 1/2"):
        response = api.post("/v1/schedules", headers=headers, json={
            "site_id": site_id, "product_id": product["id"], "cron_expression": cron})
        assert response.status_code == 422, (cron, response.text)
    response = api.post("/v1/schedules", headers=headers, json={
        "site_id": site_id, "product_id": product["id"], "cron_expression": "0 9 * * *", "timezone": "Mars/Base"})
    assert response.status_code == 422
    assert api.get("/v1/schedules", headers=headers).json()["items"] == []
    bad_site = api.post("/v1/sites", headers=headers, json={"slug": "evil", "wp_admin_url": "http://192.168.1.1/"})
    assert bad_site.status_code == 422
    assert api.post("/v1/products", headers=headers, json={"url": product_site, "extra": 1}).status_code == 422
    assert api.get(f"/v1/products/{uuid.uuid4()}", headers=headers).status_code == 404
