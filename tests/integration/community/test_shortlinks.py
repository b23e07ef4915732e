"""Shortlinks end to end: the CRUD API (random and chosen keys, 409, SSRF-refused targets, references), the
redirect on the tracking function (``/s/{key}``: 302/301, UTM merged, one click = one activity, machine traffic
recorded as none, unknown or disabled keys a plain 404), the anonymous-id cookie and its link to a developer,
consent, QR codes counted as scans, and isolation between tenants of one pool."""
from __future__ import annotations

import io
import uuid
import xml.etree.ElementTree as ElementTree
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import segno

from funnel.community.identity import AccountIn
from funnel.community.shortlinks import ANON_COOKIE
from tests.integration.community.conftest import COMMUNITY_POOL, PROBLEM
from tests.support.gateway_client import gateway_client
from tests.support.tenants import new_tenant

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"


@pytest.fixture(scope="module")
def visit(runtime):
    """``visit(key, ...)``: a request for ``/s/{key}`` through the local gateway, redirects not followed."""
    with gateway_client(runtime.api_url, timeout=30, follow_redirects=False) as client:

        def request(key: str, *, method: str = "GET", agent: str | None = BROWSER, anon: str | None = None,
                    query: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
            sent = {"user-agent": agent or "", **(headers or {})}
            if anon:
                sent["cookie"] = f"{ANON_COOKIE}={anon}"
            client.cookies.clear()
            return client.request(method, f"/s/{key}{query}", headers=sent)

        yield request


def create(api, headers, **body) -> dict:
    answer = api.post("/v1/shortlinks", headers=headers, json={"target_url": "https://example.com/docs", **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def clicks(tenant_conn, shortlink_id: str) -> list[dict]:
    with tenant_conn() as conn:
        return conn.execute("SELECT action, developer_id, anon_id, resource_id, metadata FROM activities "
                            "WHERE source = 'shortlink' AND metadata->>'shortlink_id' = %s ORDER BY recorded_at",
                            (shortlink_id,)).fetchall()


def test_crud_with_random_and_chosen_keys(api, owner_headers):
    random = create(api, owner_headers, utm={"utm_source": "x"})
    assert len(random["key"]) == 8 and random["key"].isalnum() and random["redirect_status"] == 302
    assert random["short_url"].endswith(f"/s/{random['key']}") and random["qr_url"].endswith("?s=qr")
    key = f"launch-{uuid.uuid4().hex[:6]}"
    chosen = create(api, owner_headers, key=key, redirect_status=301)
    assert chosen["key"] == key and chosen["enabled"] is True
    again = api.post("/v1/shortlinks", headers=owner_headers, json={"target_url": "https://example.com", "key": key})
    assert again.status_code == 409 and again.headers["content-type"].startswith(PROBLEM)
    path = f"/v1/shortlinks/{chosen['shortlink_id']}"
    changed = api.patch(path, headers=owner_headers, json={"enabled": False, "utm": {"utm_medium": "qr"}})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["enabled"], changed.json()["utm"]["utm_medium"]) == (False, "qr")
    listed = api.get("/v1/shortlinks", headers=owner_headers, params={"enabled": False, "limit": 200}).json()
    assert chosen["shortlink_id"] in {s["shortlink_id"] for s in listed["items"]}
    assert api.delete(path, headers=owner_headers).status_code == 204
    assert api.get(path, headers=owner_headers).status_code == 404
    assert create(api, owner_headers, key=key)["key"] == key  # a deleted link's key is free again


@pytest.mark.parametrize("target", ["ftp://example.com/file", "http://127.0.0.1/admin", "http://10.0.0.8/",
                                    "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://localhost/",
                                    "https://intranet/", "javascript:alert(1)", "http://user:pw@example.com/"])
def test_unsafe_targets_are_refused(api, owner_headers, target):
    answer = api.post("/v1/shortlinks", headers=owner_headers, json={"target_url": target})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["body", "target_url"]


def test_redirect_merges_utm_and_records_one_click(api, owner_headers, tenant_conn, visit):
    link = create(api, owner_headers, target_url="https://example.com/docs?utm_source=keep&lang=ja",
                  utm={"utm_source": "ignored", "utm_medium": "social", "utm_campaign": "launch"})
    answer = visit(link["key"], headers={"referer": "https://news.example.org/"})
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query == {"utm_source": ["keep"], "lang": ["ja"], "utm_medium": ["social"], "utm_campaign": ["launch"]}
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite", "max-age", "path"} <= attributes and "SameSite=Lax" in cookie
    assert "Max-Age=31536000" in cookie
    [click] = clicks(tenant_conn, link["shortlink_id"])
    assert click["action"] == "click" and click["anon_id"] == cookie.split(";")[0].split("=", 1)[1]
    assert click["metadata"]["key"] == link["key"] and click["metadata"]["referrer"] == "https://news.example.org/"
    assert click["metadata"]["utm"]["utm_medium"] == "social" and click["metadata"]["user_agent"] == BROWSER


def test_301_when_asked(api, owner_headers, visit):
    link = create(api, owner_headers, redirect_status=301)
    assert visit(link["key"]).status_code == 301


def test_machine_traffic_is_redirected_but_no_click(api, owner_headers, tenant_conn, visit):
    link = create(api, owner_headers)
    for answer in (visit(link["key"], method="HEAD"), visit(link["key"], agent="Slackbot-LinkExpanding 1.0"),
                   visit(link["key"], agent="python-requests/2.32"), visit(link["key"], agent=None),
                   visit(link["key"], headers={"sec-purpose": "prefetch"}),
                   visit(link["key"], headers={"purpose": "prefetch"})):
        assert answer.status_code == 302
    assert [c["metadata"]["user_agent"] for c in clicks(tenant_conn, link["shortlink_id"])] == []


def test_unknown_and_disabled_keys_are_a_plain_404(api, owner_headers, visit):
    link = create(api, owner_headers, enabled=False)
    for key in (link["key"], "no-such-key", "bad%20key"):
        answer = visit(key)
        assert answer.status_code == 404 and "location" not in answer.headers
        assert answer.headers["content-type"].startswith("text/html")


def test_a_known_anon_id_gives_the_click_its_developer_and_consent_withholds_it(api, owner_headers, tenant_conn,
                                                                              resolve, visit):
    [person] = resolve(AccountIn(provider="github", external_user_id=f"u{uuid.uuid4().hex[:8]}", handle="mika"))
    anon = uuid.uuid4().hex
    earlier = create(api, owner_headers)
    assert visit(earlier["key"], anon=anon).status_code == 302  # still anonymous
    assert clicks(tenant_conn, earlier["shortlink_id"])[0]["developer_id"] is None
    with tenant_conn() as conn:  # an earlier activity carried the anon id with the account (e.g. a signup)
        conn.execute("INSERT INTO activities (developer_id, account_id, anon_id, action, occurred_at, source) "
                     "VALUES (%s, %s, %s, 'signup', now(), 'product')", (person.developer_id, person.account_id, anon))
    link = create(api, owner_headers)
    answer = visit(link["key"], anon=anon)
    assert answer.status_code == 302 and "set-cookie" not in answer.headers  # the visitor's cookie is kept
    [click] = clicks(tenant_conn, link["shortlink_id"])
    assert (click["developer_id"], click["anon_id"]) == (person.developer_id, anon)
    assert clicks(tenant_conn, earlier["shortlink_id"])[0]["developer_id"] == person.developer_id
    with tenant_conn() as conn:
        conn.execute("UPDATE developers SET consent_analytics = false WHERE developer_id = %s", (person.developer_id,))
    assert visit(link["key"], anon=anon).status_code == 302
    assert len(clicks(tenant_conn, link["shortlink_id"])) == 1  # no activity for a developer without consent


def test_the_qr_code_encodes_the_scan_url_and_a_scan_counts_as_a_scan(api, owner_headers, tenant_conn, visit):
    link = create(api, owner_headers, resource_id=None)
    path = f"/v1/shortlinks/{link['shortlink_id']}/qr"
    png = api.get(path, headers=owner_headers, params={"format": "png", "ecc": "H", "scale": 4})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = api.get(path, headers=owner_headers, params={"format": "svg", "ecc": "L", "scale": 3})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert ElementTree.fromstring(svg.content).tag.endswith("svg")
    # no QR decoder here: the image is byte for byte the QR code of the scan URL at that level and scale
    expected = io.BytesIO()
    segno.make_qr(link["qr_url"], error="l").save(expected, kind="svg", scale=3, xmldecl=True)
    assert svg.content == expected.getvalue()
    assert api.get(path, headers=owner_headers, params={"ecc": "X"}).status_code == 422
    answer = visit(link["key"], query="?s=qr")
    assert answer.status_code == 302 and "s=qr" not in answer.headers["location"]
    visit(link["key"])
    assert [c["action"] for c in clicks(tenant_conn, link["shortlink_id"])] == ["scan", "click"]


def test_a_tenants_shortlink_domain_is_its_own_namespace(api, owner_headers, tenant_conn, visit):
    domain = f"go-{uuid.uuid4().hex[:6]}.example.org"
    with tenant_conn() as conn:
        conn.execute("INSERT INTO system_settings (shortlink_domain) VALUES (%s) ON CONFLICT (tenant_id) "
                     "DO UPDATE SET shortlink_domain = EXCLUDED.shortlink_domain", (domain,))
    try:
        link = create(api, owner_headers, key=f"own-{uuid.uuid4().hex[:6]}")
    finally:
        with tenant_conn() as conn:
            conn.execute("UPDATE system_settings SET shortlink_domain = NULL")
    assert link["host"] == domain and link["short_url"] == f"https://{domain}/s/{link['key']}"
    assert visit(link["key"], headers={"host": domain}).status_code == 302
    assert visit(link["key"]).status_code == 404  # not claimed on the default domain


def test_pooled_tenants_are_isolated(api, owner_headers, tenant_conn, visit):
    other = new_tenant(pool=COMMUNITY_POOL)
    key = f"shared-{uuid.uuid4().hex[:6]}"
    mine = create(api, owner_headers, key=key)
    taken = api.post("/v1/shortlinks", headers=other.headers, json={"target_url": "https://example.com", "key": key})
    assert taken.status_code == 409  # the default domain is one namespace
    assert api.get(f"/v1/shortlinks/{mine['shortlink_id']}", headers=other.headers).status_code == 404
    assert api.get(f"/v1/shortlinks/{mine['shortlink_id']}/qr", headers=other.headers).status_code == 404
    with tenant_conn() as conn:
        campaign = conn.execute("INSERT INTO campaigns (name) VALUES (%s) RETURNING campaign_id",
                                (f"c-{uuid.uuid4().hex[:6]}",)).fetchone()["campaign_id"]
    refused = api.post("/v1/shortlinks", headers=other.headers,
                       json={"target_url": "https://example.com", "campaign_id": str(campaign)})
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["body", "campaign_id"]
    linked = create(api, owner_headers, campaign_id=str(campaign))
    assert linked["campaign_id"] == str(campaign)
    visit(linked["key"])
    assert clicks(tenant_conn, linked["shortlink_id"])[0]["metadata"]["campaign_id"] == str(campaign)
