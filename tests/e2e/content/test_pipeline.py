"""The article pipeline end to end: local runtime (gateway, Step Functions in
moto, in-process Lambdas) publishing into a real WordPress."""
from __future__ import annotations

import json

import pytest

from tests.e2e.content.helpers import make_product, make_site, steps_by_name, wait_run

pytestmark = pytest.mark.wordpress
OFFLINE_LABEL = "[offline model: deterministic text, no LLM was called]"


def _history_payload_sizes(runtime, execution_arn: str) -> list[int]:
    sfn = runtime.client("stepfunctions")
    sizes, token = [], None
    while True:
        kwargs = {"executionArn": execution_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.get_execution_history(**kwargs)
        for event in page["events"]:
            for key, details in event.items():
                if key.endswith("EventDetails") and isinstance(details, dict):
                    for field in ("input", "output", "parameters", "cause"):
                        if isinstance(details.get(field), str):
                            sizes.append(len(details[field].encode()))
        token = page.get("nextToken")
        if not token:
            return sizes


def test_pipeline_publishes_articles_to_wordpress(runtime, api, tenant, wordpress, product_site):
    site = make_site(api, tenant, wordpress)
    assert "wp_api_token" not in site and site["has_token"] is True and site["status"] == "active"
    product = make_product(api, tenant, site["id"], product_site + "/acme", image_style="flat", image_size="320x200")

    started = api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers,
                       json={"articles_count": 2, "publish_mode": "publish"})
    assert started.status_code == 202, started.text
    run = wait_run(api, tenant, started.json()["id"])
    assert run["status"] == "completed", run
    assert run["progress"]["steps_done"] == run["progress"]["steps_total"] == 2 + 2 * 3 + 1

    clusters = api.get("/v1/clusters", headers=tenant.headers, params={"product_id": product["id"]}).json()["items"]
    assert len(clusters) == 1 and clusters[0]["status"] == "completed"
    articles = api.get(f"/v1/clusters/{clusters[0]['id']}", headers=tenant.headers).json()["articles"]
    assert len(articles) == 2
    for article in articles:
        assert article["status"] == "published" and article["wp_post_id"] and article["wp_media_id"]
        assert OFFLINE_LABEL in article["content"]
        post = wordpress.post(article["wp_post_id"])
        assert post["status"] == "publish" and post["featured_media"] == article["wp_media_id"]
        assert post["title"]["raw"] == article["title"]
        assert "<script" not in post["content"]["raw"]

    steps = steps_by_name(api, tenant, run["id"])
    assert steps[("analyze_product", "")]["llm_model"] == "offline/offline-standard"
    assert steps[("analyze_product", "")]["token_usage"]["total_tokens"] > 0
    artifacts = api.get(f"/v1/runs/{run['id']}/artifacts", headers=tenant.headers).json()["items"]
    paths = {a["file_path"] for a in artifacts}
    prefix = f"storage/{tenant.tenant_id}/{run['id']}/"
    assert f"{prefix}analyze_product/output.json" in paths and f"{prefix}plan_cluster/output.json" in paths
    assert all(len(a["digest"]) == 64 for a in artifacts)
    assert sum(1 for p in paths if p.endswith("/artifacts/cover.png")) == 2

    sizes = _history_payload_sizes(runtime, run["execution_arn"])
    assert sizes and max(sizes) < 8 * 1024, max(sizes)

    product_after = api.get(f"/v1/products/{product['id']}", headers=tenant.headers).json()
    assert product_after["analysis_result"]["keywords"]


def test_transient_wordpress_failure_is_retried_and_publishes_once(runtime, api, tenant, wordpress, product_site):
    site = make_site(api, tenant, wordpress)
    product = make_product(api, tenant, site["id"], product_site + "/retry", image_style="none")
    wordpress.fail_next(2, status=503)
    try:
        started = api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers,
                           json={"articles_count": 1, "publish_mode": "draft"})
        run = wait_run(api, tenant, started.json()["id"])
        assert wordpress.faults_served() == 2
    finally:
        wordpress.clear_faults()
    assert run["status"] == "completed", run
    steps = steps_by_name(api, tenant, run["id"])
    publish = next(s for (name, _), s in steps.items() if name == "publish")
    assert publish["retry_count"] == 2 and publish["status"] == "completed"
    article = api.get(f"/v1/articles/{publish['item_key']}", headers=tenant.headers).json()
    assert article["status"] == "draft" and article["wp_status"] == "draft"
    matching = wordpress.posts(slug=f"funnel-{publish['item_key'].replace('-', '')[:16]}")
    assert [p["id"] for p in matching] == [article["wp_post_id"]]


def test_permanent_failure_fails_the_run_and_resume_finishes_it(runtime, api, tenant, wordpress, product_site):
    site = make_site(api, tenant, wordpress)
    product = make_product(api, tenant, site["id"], product_site + "/perm", image_style="none")
    wordpress.fail_next(1, status=403)
    try:
        started = api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers,
                           json={"articles_count": 2, "publish_mode": "publish"})
        run = wait_run(api, tenant, started.json()["id"])
    finally:
        wordpress.clear_faults()
    assert run["status"] == "failed", run
    assert "403" in run["error_message"] and "publish" in run["error_message"]
    steps = steps_by_name(api, tenant, run["id"])
    failed = [s for s in steps.values() if s["status"] == "failed"]
    assert failed and all(s["retry_count"] == 0 for s in failed)  # a 403 is not retried

    resumed = api.post(f"/v1/runs/{run['id']}/resume", headers=tenant.headers)
    assert resumed.status_code == 200, resumed.text
    run = wait_run(api, tenant, run["id"])
    assert run["status"] == "completed", run
    after = steps_by_name(api, tenant, run["id"])
    for key, step in after.items():
        if key[0] in ("analyze_product", "plan_cluster", "write_article"):
            assert step["retry_count"] == 0, step  # finished steps were reused, not redone
    articles = api.get("/v1/articles", headers=tenant.headers,
                       params={"cluster_id": api.get("/v1/clusters", headers=tenant.headers,
                                                     params={"product_id": product["id"]}).json()["items"][0]["id"]}
                       ).json()["items"]
    assert len(articles) == 2 and all(a["status"] == "published" for a in articles)
    for article in articles:
        assert len(wordpress.posts(slug=f"funnel-{article['id'].replace('-', '')[:16]}")) == 1


def test_failure_notifies_the_user(runtime, api, tenant, wordpress, product_site):
    pytest.importorskip("funnel.notifications.service", reason="notifications area not merged yet")
    site = make_site(api, tenant, wordpress)
    product = make_product(api, tenant, site["id"], product_site + "/notify", image_style="none")
    wordpress.fail_next(1, status=400)
    try:
        started = api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers,
                           json={"articles_count": 1})
        run = wait_run(api, tenant, started.json()["id"])
    finally:
        wordpress.clear_faults()
    assert run["status"] == "failed"
    from funnel import db

    with db.tenant_transaction(tenant.tenant_id) as conn:
        rows = conn.execute("SELECT * FROM notifications WHERE related_entity_id = %s", (run["id"],)).fetchall()
    assert rows, "no notification for the failed run"


def test_pause_and_cancel(runtime, api, tenant, wordpress, product_site):
    site = make_site(api, tenant, wordpress)
    product = make_product(api, tenant, site["id"], product_site + "/pause", image_style="none")
    started = api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers, json={"articles_count": 1})
    run_id = started.json()["id"]
    paused = api.post(f"/v1/runs/{run_id}/pause", headers=tenant.headers)
    if paused.status_code == 409:  # it finished before the pause arrived: nothing to test on this machine
        pytest.skip("the run completed before it could be paused")
    assert paused.json()["status"] == "paused"
    run = wait_run(api, tenant, run_id, statuses=("paused", "completed"))
    resumed = api.post(f"/v1/runs/{run_id}/resume", headers=tenant.headers)
    assert resumed.status_code == 200, resumed.text
    assert wait_run(api, tenant, run_id)["status"] == "completed"
    assert api.post(f"/v1/runs/{run_id}/cancel", headers=tenant.headers).status_code == 409

    started = api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers, json={"articles_count": 1})
    cancelled = api.post(f"/v1/runs/{started.json()['id']}/cancel", headers=tenant.headers)
    assert cancelled.status_code in (200, 409)
    final = wait_run(api, tenant, started.json()["id"], statuses=("cancelled", "completed"))
    assert final["status"] in ("cancelled", "completed")
    _ = run, json
