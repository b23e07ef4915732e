"""The article pipeline end to end: local runtime (gateway, Step Functions in
moto, in-process Lambdas) publishing into a real WordPress."""
from __future__ import annotations

import time

import pytest

from tests.e2e.content.helpers import make_product, make_site, scripted_answer, steps_by_name, use_models, wait_run
from tests.support.openai_server import Reply

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


def _slow_run(api, tenant, wordpress, product_url: str, scripted_provider, seconds: float = 1.5) -> str:
    """A run of one article on the scripted provider whose product analysis takes ``seconds``: long enough to
    pause or cancel it mid-run. Its id."""
    provider, server = scripted_provider
    use_models(api, tenant, provider)
    site = make_site(api, tenant, wordpress)
    product = make_product(api, tenant, site["id"], product_url, image_style="none")
    server.script(Reply(content=scripted_answer({"messages": [{"content": "analyze_product"}]}), delay=seconds))
    return api.post(f"/v1/products/{product['id']}/generate", headers=tenant.headers,
                    json={"articles_count": 1}).json()["id"]


def test_pause_stops_at_the_next_step_and_a_paused_run_can_be_cancelled(runtime, api, tenant, wordpress, product_site,
                                                          scripted_provider):
    run_id = _slow_run(api, tenant, wordpress, product_site + "/pause", scripted_provider)
    paused = api.post(f"/v1/runs/{run_id}/pause", headers=tenant.headers)
    assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
    execution = runtime.client("stepfunctions")
    arn = api.get(f"/v1/runs/{run_id}", headers=tenant.headers).json()["execution_arn"]
    deadline = time.monotonic() + 30
    while execution.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    halted = api.get(f"/v1/runs/{run_id}", headers=tenant.headers).json()
    steps = steps_by_name(api, tenant, run_id)
    assert halted["status"] == "paused" and not any(name == "write_article" for name, _ in steps)
    cancelled = api.post(f"/v1/runs/{run_id}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.post(f"/v1/runs/{run_id}/resume", headers=tenant.headers).status_code == 409


def test_resume_after_pause_finishes_without_redoing_the_analysis(runtime, api, tenant, wordpress, product_site,
                                                                  scripted_provider, monkeypatch):
    from funnel.content import generation

    run_id = _slow_run(api, tenant, wordpress, product_site + "/pause-resume", scripted_provider)
    assert api.post(f"/v1/runs/{run_id}/pause", headers=tenant.headers).json()["status"] == "paused"
    deadline = time.monotonic() + 30  # the slow analysis finishes and the next step sees the pause
    while not api.get(f"/v1/runs/{run_id}", headers=tenant.headers).json()["config"].get("halted_execution"):
        assert time.monotonic() < deadline, "the execution never halted"
        time.sleep(0.05)
    # Resumed in the moment the halting execution still looks RUNNING to Step Functions: a new one must start.
    monkeypatch.setattr(generation, "_execution_running", lambda run: True)
    resumed = api.post(f"/v1/runs/{run_id}/resume", headers=tenant.headers)
    assert resumed.status_code == 200, resumed.text
    monkeypatch.undo()
    run = wait_run(api, tenant, run_id)
    assert run["status"] == "completed", run
    server = scripted_provider[1]
    analyses = sum("analyze_product" in r["messages"][0]["content"] for r in server.requests)
    assert analyses == 1  # the resumed run reused the stored analysis
    assert api.post(f"/v1/runs/{run_id}/cancel", headers=tenant.headers).status_code == 409


def test_cancel_stops_a_running_run_before_anything_is_published(runtime, api, tenant, wordpress, product_site,
                                                                 scripted_provider):
    run_id = _slow_run(api, tenant, wordpress, product_site + "/cancel", scripted_provider)
    cancelled = api.post(f"/v1/runs/{run_id}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    time.sleep(2)
    run = api.get(f"/v1/runs/{run_id}", headers=tenant.headers).json()
    assert run["status"] == "cancelled"
    assert not any(name in ("write_article", "publish") for name, _ in steps_by_name(api, tenant, run_id))
    assert api.post(f"/v1/runs/{run_id}/resume", headers=tenant.headers).status_code == 409
