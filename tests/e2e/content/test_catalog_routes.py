"""The content routes around a generated article, through the local runtime: sites (activation once a token is
given, deletion), products, articles (edit, publish as a draft, unpublish, archive), images (the stored cover and
its download URL) and clusters, each answering its declared model."""
from __future__ import annotations

import uuid

import pytest

from tests.e2e.content.helpers import make_product, make_site, wait_run

pytestmark = pytest.mark.wordpress


def test_a_site_becomes_active_once_it_has_an_application_password(runtime, api, tenant, wordpress):
    site = make_site(api, tenant, wordpress, wp_api_token=None)
    assert site["status"] == "provisioning" and site["has_token"] is False
    patched = api.patch(f"/v1/sites/{site['id']}", headers=tenant.headers,
                        json={"wp_api_token": wordpress.app_password})
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "active" and patched.json()["has_token"] is True
    assert "wp_api_token" not in patched.json()
    listed = api.get("/v1/sites", headers=tenant.headers).json()
    assert [s["id"] for s in listed["items"]] == [site["id"]] and listed["next_cursor"] is None
    assert api.post("/v1/sites", headers=tenant.headers, json={
        "slug": site["slug"], "wp_admin_url": wordpress.base}).status_code == 409
    assert api.delete(f"/v1/sites/{site['id']}", headers=tenant.headers).status_code == 204
    assert api.get(f"/v1/sites/{site['id']}", headers=tenant.headers).status_code == 404
    assert api.delete(f"/v1/sites/{site['id']}", headers=tenant.headers).status_code == 404


def test_articles_images_and_clusters_of_a_generated_run(runtime, api, tenant, wordpress, product_site):
    headers = tenant.headers
    site = make_site(api, tenant, wordpress)
    product = make_product(api, tenant, site["id"], product_site + "/catalog", image_style="flat",
                           image_size="160x100")
    renamed = api.patch(f"/v1/products/{product['id']}", headers=headers, json={"name": "Acme catalog"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Acme catalog"
    assert api.get("/v1/products", headers=headers, params={"site_id": site["id"]}).json()["items"][0]["id"] == \
        product["id"]
    run = wait_run(api, tenant, api.post(f"/v1/products/{product['id']}/generate", headers=headers,
                                         json={"articles_count": 1, "publish_mode": "draft"}).json()["id"])
    assert run["status"] == "completed", run
    [article] = api.get("/v1/articles", headers=headers, params={"status": "draft"}).json()["items"]
    assert article["wp_post_id"] and article["wp_status"] == "draft"

    edited = api.patch(f"/v1/articles/{article['id']}", headers=headers,
                       json={"title": "Edited", "content": "<p>Kept</p><script>alert(1)</script>"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["title"] == "Edited" and "<script" not in edited.json()["content"]
    published = api.post(f"/v1/articles/{article['id']}/publish", headers=headers, json={"mode": "publish"})
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published" and published.json()["published_at"]
    assert wordpress.post(article["wp_post_id"])["title"]["raw"] == "Edited"
    unpublished = api.post(f"/v1/articles/{article['id']}/unpublish", headers=headers).json()
    assert unpublished["status"] == "draft" and unpublished["wp_status"] == "draft"
    assert unpublished["published_at"] == published.json()["published_at"]  # the first publication is kept
    archived = api.post(f"/v1/articles/{article['id']}/archive", headers=headers).json()
    assert archived["status"] == "archived"
    assert api.patch(f"/v1/articles/{article['id']}", headers=headers, json={"title": "No"}).status_code == 409
    assert api.post(f"/v1/articles/{article['id']}/publish", headers=headers, json={}).status_code == 409

    [image] = api.get("/v1/images", headers=headers, params={"article_id": article["id"]}).json()["items"]
    detail = api.get(f"/v1/images/{image['id']}", headers=headers).json()
    assert detail["storage_path"].endswith("/artifacts/cover.png") and detail["download_url"]
    assert {k: v for k, v in detail.items() if k != "download_url"} == image
    assert api.delete(f"/v1/images/{image['id']}", headers=headers).status_code == 204
    assert api.get(f"/v1/images/{image['id']}", headers=headers).status_code == 404

    [cluster] = api.get("/v1/clusters", headers=headers, params={"product_id": product["id"]}).json()["items"]
    assert api.delete(f"/v1/clusters/{cluster['id']}", headers=headers).status_code == 204
    assert api.get(f"/v1/articles/{article['id']}", headers=headers).status_code == 404  # deleted with its cluster
    assert api.delete(f"/v1/products/{product['id']}", headers=headers).status_code == 204
    assert api.get(f"/v1/products/{product['id']}", headers=headers).status_code == 404
    assert api.get(f"/v1/clusters/{uuid.uuid4()}", headers=headers).status_code == 404
