"""Plugin webhooks take bodies up to the bulk limit (funnel.api.context.BULK_BODY_PREFIXES): GitHub sends
deliveries of up to 25 MB, so a 2 MiB one (an issue with a long body) is accepted and becomes its activity, where
any other route refuses a body that large with 413."""
from __future__ import annotations

import pytest

from funnel.settings import get_settings
from tests.support.gateway_client import gateway_client
from tests.support.plugin_webhooks import activities_of_event, create_plugin, github_delivery, github_sample

TWO_MIB = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def github_plugin(runtime, owner_headers):

    with gateway_client(runtime.api_url, timeout=30) as client:
        return create_plugin(client, owner_headers, kind="github", name="GitHub (large deliveries)")


def test_a_2_mib_github_delivery_is_accepted_and_processed(api, community_tenant, github_plugin):
    assert get_settings().max_body_bytes < TWO_MIB <= get_settings().max_bulk_body_bytes
    payload = github_sample("issues.opened")
    payload["issue"]["body"] = "A long stack trace.\n" * (TWO_MIB // 20)
    answer = github_delivery(api, github_plugin["webhook_url"], "issues", payload, github_plugin["webhook_secret"])
    assert answer.status_code == 200, answer.text[:500]
    receipt = answer.json()
    assert receipt["status"] == "processed" and receipt["activities"] == 1
    assert [a["action"] for a in activities_of_event(community_tenant.tenant_id, receipt["raw_id"])] == ["issue"]


def test_other_routes_keep_the_1_mib_limit(api, owner_headers):
    answer = api.post("/v1/plugins", headers={**owner_headers, "content-type": "application/json"},
                      content=b'{"key": "' + b"x" * TWO_MIB + b'"}')
    assert answer.status_code == 413, answer.text[:500]
