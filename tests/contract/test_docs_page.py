"""The API's documentation page is served through the gateway (template.yaml routes /docs to ApiFunction).

Contract tests live in ``tests/contract/``; this one goes through the local runtime's gateway, which serves exactly
the routes template.yaml declares.
"""
from __future__ import annotations

import httpx


def test_the_docs_page_is_served_and_reads_the_document(runtime):
    page = httpx.get(runtime.api_url + "/docs", timeout=30)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text and "swagger" in page.text.lower()
    redirect = httpx.get(runtime.api_url + "/docs/oauth2-redirect", timeout=30)
    assert redirect.status_code == 200 and redirect.headers["content-type"].startswith("text/html")
    document = httpx.get(runtime.api_url + "/openapi.json", timeout=30)
    assert document.status_code == 200 and document.json()["openapi"].startswith("3.")
