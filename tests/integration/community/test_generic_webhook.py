"""The generic signed webhook (a plugin of kind "webhook"), through the API: ``{"events": [...]}`` signed with
HMAC-SHA256 of ``timestamp + "." + body`` (X-Funnel-Timestamp, X-Funnel-Signature) becomes activities; a wrong
signature or a timestamp more than 5 minutes away is a 401 that changes nothing; a replay is recorded once; a body
that is not the documented shape is archived and answered 202 naming the fields."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from tests.support.gateway_client import gateway_client
from tests.support.plugin_webhooks import activities_of_event, create_plugin, generic_delivery, plugin_counts

SECRET = "generic-webhook-secret-0123456789"


@pytest.fixture(scope="module")
def webhook_plugin(runtime, owner_headers):

    with gateway_client(runtime.api_url, timeout=30) as client:
        return create_plugin(client, owner_headers, kind="webhook", name="Meetup sync", config={"source": "meetup"},
                             secrets={"webhook_secret": SECRET})


def _event(user_id: str, action: str = "attend", **extra) -> dict:
    return {"account": {"provider": "connpass", "external_user_id": user_id, "handle": f"user{user_id}",
                        "display_name": "Aiko Tanaka"},
            "action": action, "occurred_at": "2025-04-01T10:00:00+09:00",
            "resource": {"category": "event", "external_id": "connpass-31337", "title": "Funnel Meetup #3",
                         "url": "https://connpass.example/event/31337/"}, **extra}


def test_signed_events_become_activities_with_their_account_and_resource(api, community_tenant, webhook_plugin):
    answer = generic_delivery(api, webhook_plugin["webhook_url"],
                              {"events": [_event("77001"), _event("77002", "register", metadata={"seat": "A-1"})]},
                              SECRET)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "processed" and answer.json()["activities"] == 2
    found = activities_of_event(community_tenant.tenant_id, answer.json()["raw_id"])
    assert [(a["action"], a["source"], a["provider"], a["external_user_id"], a["category"], a["external_id"])
            for a in found] == [("attend", "meetup", "connpass", "77001", "event", "connpass-31337"),
                                ("register", "meetup", "connpass", "77002", "event", "connpass-31337")]
    assert all(a["developer_id"] for a in found)
    assert found[1]["metadata"] == {"seat": "A-1"}


def test_the_source_defaults_to_the_plugin_key(api, community_tenant, owner_headers):
    plugin = create_plugin(api, owner_headers, kind="webhook", key=f"forum-{uuid.uuid4().hex[:6]}",
                           secrets={"webhook_secret": SECRET})
    answer = generic_delivery(api, plugin["webhook_url"], {"events": [_event("77003", "post")]}, SECRET)
    [activity] = activities_of_event(community_tenant.tenant_id, answer.json()["raw_id"])
    assert activity["source"] == plugin["key"]


@pytest.mark.parametrize("how", ["wrong secret", "no signature", "stale", "future", "no timestamp",
                                 "malformed timestamp", "signed other timestamp"])
def test_a_bad_signature_or_timestamp_is_refused_and_changes_nothing(api, community_tenant, webhook_plugin, how):
    body = {"events": [_event("77009")]}
    now = int(time.time())
    kwargs: dict = {
        "wrong secret": {"secret": "another-secret-entirely-000"},
        "no signature": {"secret": None},
        "stale": {"secret": SECRET, "timestamp": now - 360},
        "future": {"secret": SECRET, "timestamp": now + 360},
        "no timestamp": {"secret": SECRET, "timestamp": ""},
        "malformed timestamp": {"secret": SECRET, "timestamp": "17e8"},
        "signed other timestamp": {"secret": None, "timestamp": now,
                                   "signature": _signature(SECRET, now - 10, body)},
    }[how]
    before = plugin_counts(community_tenant.tenant_id, webhook_plugin["plugin_id"])
    answer = generic_delivery(api, webhook_plugin["webhook_url"], body, **kwargs)
    assert answer.status_code == 401, answer.text
    assert plugin_counts(community_tenant.tenant_id, webhook_plugin["plugin_id"]) == before


def _signature(secret: str, timestamp: int, body: dict) -> str:
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + json.dumps(body).encode(),
                                hashlib.sha256).hexdigest()


def test_a_replay_within_the_window_is_recorded_once(api, community_tenant, webhook_plugin):
    body, stamp = {"events": [_event("77010")]}, int(time.time())
    first = generic_delivery(api, webhook_plugin["webhook_url"], body, SECRET, timestamp=stamp)
    assert first.status_code == 200 and first.json()["activities"] == 1
    before = plugin_counts(community_tenant.tenant_id, webhook_plugin["plugin_id"])
    again = generic_delivery(api, webhook_plugin["webhook_url"], body, SECRET, timestamp=stamp)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert plugin_counts(community_tenant.tenant_id, webhook_plugin["plugin_id"]) == before


def test_a_delivery_id_makes_a_resend_with_a_new_timestamp_a_duplicate(api, community_tenant, webhook_plugin):
    delivery, body = str(uuid.uuid4()), {"events": [_event("77011")]}
    first = generic_delivery(api, webhook_plugin["webhook_url"], body, SECRET, delivery=delivery)
    assert first.json()["status"] == "processed"
    again = generic_delivery(api, webhook_plugin["webhook_url"], body, SECRET, delivery=delivery,
                             timestamp=int(time.time()) + 5)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"


def test_an_events_dedup_key_is_idempotent_across_deliveries(api, webhook_plugin):
    event = _event("77012", dedup_key=f"meetup:attend:{uuid.uuid4().hex}")
    first = generic_delivery(api, webhook_plugin["webhook_url"], {"events": [event]}, SECRET)
    second = generic_delivery(api, webhook_plugin["webhook_url"], {"events": [event]}, SECRET,
                              timestamp=int(time.time()) + 1)  # another delivery of the same event
    assert second.json()["status"] == "processed"
    assert (first.json()["activities"], second.json()["activities"], second.json()["duplicates"]) == (1, 0, 1)


@pytest.mark.parametrize(("body", "field"), [
    ({"events": [{**_event("77020"), "occurred_at": None}]}, "occurred_at"),
    ({"events": [{**_event("77021"), "occurred_at": "2025-04-01T10:00:00"}]}, "occurred_at"),  # no zone
    ({"events": []}, "events"),
    ({"event": [_event("77022")]}, "events"),
    ({"events": [{**_event("77023"), "account": {"provider": "Not A Provider!", "external_user_id": "1"}}]},
     "provider"),
])
def test_a_body_not_in_the_documented_shape_is_archived_and_answered_202(api, community_tenant, webhook_plugin,
                                                                          body, field):
    before = plugin_counts(community_tenant.tenant_id, webhook_plugin["plugin_id"])
    answer = generic_delivery(api, webhook_plugin["webhook_url"], body, SECRET)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "not_understood" and field in answer.json()["detail"]
    after = plugin_counts(community_tenant.tenant_id, webhook_plugin["plugin_id"])
    assert (after["events"], after["activities"]) == (before["events"] + 1, before["activities"])
