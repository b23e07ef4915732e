"""Through the API: URLs and hosts that embed or route to IPv4, and malformed URLs, are a 422 naming the field
(never a 500), and nothing is written."""
from __future__ import annotations

import uuid

import pytest

from tests.support.tenants import new_tenant

PROBLEM = "application/problem+json"
# 6to4 of 169.254.169.254, NAT64 (well-known and local-use), Teredo, IPv4-compatible, IPv4-mapped, SIIT.
EMBEDDING = ["2002:a9fe:a9fe::", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a9fe:a9fe", "2001:0:a9fe:a9fe::1",
             "::a9fe:a9fe", "::ffff:a9fe:a9fe", "::ffff:0:a9fe:a9fe"]
MALFORMED = ["http://[::1", "http://127.0.0.1:80:80/", "http://[::1]:99999/", "http://exa mple.com/"]


@pytest.fixture(scope="module")
def tenant(runtime):
    return new_tenant(pool=f"pool_{uuid.uuid4().hex[:6]}")


@pytest.fixture
def site(api, tenant):
    response = api.post("/v1/sites", headers=tenant.headers,
                        json={"slug": f"ok-{uuid.uuid4().hex[:6]}", "wp_admin_url": "http://127.0.0.1:9/"})
    assert response.status_code == 201, response.text
    return response.json()


def _refused(response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert [e["loc"] for e in response.json()["errors"]] == [["body", field]], response.text


def _urls() -> list[str]:
    return [f"http://[{address}]/" for address in EMBEDDING] + MALFORMED


@pytest.mark.parametrize("url", _urls())
def test_sites_and_products_refuse_the_url(api, tenant, site, url):
    sites = api.get("/v1/sites", headers=tenant.headers).json()["items"]
    _refused(api.post("/v1/sites", headers=tenant.headers, json={"slug": f"s-{uuid.uuid4().hex[:6]}",
                                                                  "wp_admin_url": url}), "wp_admin_url")
    _refused(api.patch(f"/v1/sites/{site['id']}", headers=tenant.headers, json={"wp_admin_url": url}),
             "wp_admin_url")
    _refused(api.post("/v1/products", headers=tenant.headers, json={"url": url, "site_id": site["id"]}), "url")
    assert api.get("/v1/sites", headers=tenant.headers).json()["items"] == sites
    assert api.get("/v1/sites/" + site["id"], headers=tenant.headers).json()["wp_admin_url"] == "http://127.0.0.1:9"
    assert api.get("/v1/products", headers=tenant.headers).json()["items"] == []


@pytest.mark.parametrize("url", _urls())
@pytest.mark.parametrize("kind", ["SLACK", "WEBHOOK"])
def test_webhook_and_slack_channels_refuse_the_url(api, tenant, kind, url):
    _refused(api.put(f"/v1/notification-channels/{kind}", headers=tenant.headers, json={"url": url}), "url")
    assert api.get("/v1/notification-channels", headers=tenant.headers).json()["items"] == []


@pytest.mark.parametrize("host", [*EMBEDDING, "[2002:a9fe:a9fe::]", "exa mple.com", "a/b", "127.0.0.1:25"])
def test_smtp_hosts_are_refused(api, tenant, host):
    _refused(api.post("/v1/smtp-profiles", headers=tenant.headers, json={
        "name": "relay", "host": host, "port": 587, "from_address": "a@example.com"}), "host")
    assert api.get("/v1/smtp-profiles", headers=tenant.headers).json()["items"] == []


@pytest.mark.parametrize("url", MALFORMED)
def test_a_contact_or_a_task_with_a_malformed_url_is_a_422(api, tenant, url):
    contact = api.post("/v1/contacts", headers=tenant.headers, json={"company_name": "株式会社テスト", "url": url})
    assert contact.status_code == 422 and contact.headers["content-type"].startswith(PROBLEM), contact.text
    assert [e["loc"] for e in contact.json()["errors"]] == [["body", "url"]]
    task = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": "t", "message": "こんにちは", "urls": [url],
        "sender": {"company": "株式会社サンプル", "last_name": "山田", "first_name": "太郎",
                   "email": "yamada@example.com"}})
    assert task.status_code == 422 and task.headers["content-type"].startswith(PROBLEM), task.text
    assert [e["loc"] for e in task.json()["errors"]] == [["body", "urls", 0]]
