"""GitHub webhooks into a GitHub plugin, through the API: real payload shapes (tests/fixtures/community/github/)
signed with the plugin's secret become activities of the right account, developer and repository; a bad or
missing signature is a 401 that changes nothing; a redelivery is recorded once; every other event is archived
and acknowledged; a payload that is not what its event carries is archived and answered 202; one tenant's URL
never writes into another's."""
from __future__ import annotations

import hashlib
import hmac
import uuid

import pytest

from funnel.community import webhooks
from tests.integration.community.conftest import COMMUNITY_POOL
from tests.support.gateway_client import gateway_client
from tests.support.plugin_webhooks import (
    activities_of_event,
    create_plugin,
    github_delivery,
    github_sample,
    plugin_counts,
)
from tests.support.tenants import new_tenant

REPO_ID = "700100200"
HANA, KEN, MIKA = "5550101", "5550202", "5550303"


@pytest.fixture(scope="module")
def github_plugin(runtime, community_tenant, owner_headers):

    with gateway_client(runtime.api_url, timeout=30) as client:
        return create_plugin(client, owner_headers, kind="github", name="GitHub (webhooks)")


def test_a_signed_star_becomes_an_activity_of_the_stargazer_on_the_repository(api, community_tenant,
                                                                             github_plugin):
    secret = github_plugin["webhook_secret"]
    answer = github_delivery(api, github_plugin["webhook_url"], "star", github_sample("star.created"), secret)
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert receipt["status"] == "processed" and receipt["activities"] == 1 and receipt["event_type"] == "star"
    [activity] = activities_of_event(community_tenant.tenant_id, receipt["raw_id"])
    assert (activity["action"], activity["source"], activity["provider"], activity["external_user_id"],
            activity["handle"]) == ("star", "github", "github", HANA, "hana-dev")
    assert activity["developer_id"] is not None and activity["developer_id"] == activity["account_developer_id"]
    assert (activity["category"], activity["external_id"], activity["resource_url"]) == (
        "repo", REPO_ID, "https://github.com/funnel-demo/sdk")
    assert activity["occurred_at"].isoformat() == "2025-03-01T12:34:56+00:00"
    assert activity["dedup_key"] == f"github:star:{REPO_ID}:{HANA}:2025-03-01T12:34:56Z"


def test_a_redelivery_is_recorded_once_and_answered_2xx(api, community_tenant, github_plugin):
    secret, delivery = github_plugin["webhook_secret"], str(uuid.uuid4())
    first = github_delivery(api, github_plugin["webhook_url"], "fork", github_sample("fork"), secret,
                            delivery=delivery)
    assert first.status_code == 200 and first.json()["activities"] == 1
    before = plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"])
    again = github_delivery(api, github_plugin["webhook_url"], "fork", github_sample("fork"), secret,
                            delivery=delivery)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "duplicate" and again.json()["raw_id"] == first.json()["raw_id"]
    assert plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"]) == before


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "", "sha256="])
def test_a_bad_or_missing_signature_is_refused_and_changes_nothing(api, community_tenant, github_plugin,
                                                                   signature):
    before = plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"])
    answer = github_delivery(api, github_plugin["webhook_url"], "star", github_sample("star.created"),
                             None, signature=signature)
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"]) == before


def test_signed_with_another_secret_or_over_another_body_is_refused(api, community_tenant, github_plugin):
    before = plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"])
    wrong = github_delivery(api, github_plugin["webhook_url"], "star", github_sample("star.created"),
                            "not-the-secret-of-this-plugin")
    assert wrong.status_code == 401
    body = b'{"action": "created"}'
    signed_other = "sha256=" + hmac.new(github_plugin["webhook_secret"].encode(), body + b" ",
                                        hashlib.sha256).hexdigest()
    tampered = github_delivery(api, github_plugin["webhook_url"], "star", body, None, signature=signed_other)
    assert tampered.status_code == 401
    assert plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"]) == before


# sample, event header, expected action, expected actor (the GitHub user id)
EVENTS = [
    ("watch.started", "watch", "watch", HANA),
    ("fork", "fork", "fork", KEN),
    ("issues.opened", "issues", "issue", HANA),
    ("issues.closed", "issues", "issue_closed", MIKA),
    ("issue_comment.created", "issue_comment", "comment", KEN),
    ("pull_request.opened", "pull_request", "pull_request", KEN),
    ("pull_request.closed", "pull_request", "pull_request_merged", KEN),  # the author's contribution
    ("pull_request_review.submitted", "pull_request_review", "comment", MIKA),
    ("pull_request_review_comment.created", "pull_request_review_comment", "comment", MIKA),
    ("discussion.created", "discussion", "discussion", HANA),
    ("discussion.answered", "discussion", "answer", MIKA),  # the answer's author, not who chose it
    ("discussion_comment.created", "discussion_comment", "comment", MIKA),
    ("release.published", "release", "release", MIKA),
]


@pytest.mark.parametrize(("sample", "event", "action", "actor"), EVENTS, ids=[e[0] for e in EVENTS])
def test_each_documented_event_becomes_its_activity(api, community_tenant, github_plugin, sample, event, action,
                                                    actor):
    answer = github_delivery(api, github_plugin["webhook_url"], event, github_sample(sample),
                             github_plugin["webhook_secret"])
    assert answer.status_code == 200, answer.text
    [activity] = activities_of_event(community_tenant.tenant_id, answer.json()["raw_id"])
    assert (activity["action"], activity["external_user_id"], activity["external_id"]) == (action, actor, REPO_ID)
    assert activity["developer_id"] is not None


def test_the_same_person_across_events_is_one_account_and_one_developer(api, community_tenant, github_plugin):
    secret = github_plugin["webhook_secret"]
    raws = [github_delivery(api, github_plugin["webhook_url"], event, github_sample(sample), secret).json()["raw_id"]
            for sample, event in (("issues.opened", "issues"), ("discussion.created", "discussion"))]
    developers = {a["developer_id"] for raw in raws for a in activities_of_event(community_tenant.tenant_id, raw)}
    assert len(developers) == 1


@pytest.mark.parametrize(("event", "sample"), [("ping", "ping"), ("issues", "issues.labeled"),
                                               ("check_run", "ping"), ("star", None)])
def test_other_events_and_actions_are_archived_and_acknowledged(api, community_tenant, github_plugin, event,
                                                                sample):
    payload = github_sample(sample) if sample else {**github_sample("star.created"), "action": "deleted"}
    before = plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"])
    answer = github_delivery(api, github_plugin["webhook_url"], event, payload, github_plugin["webhook_secret"])
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "archived" and answer.json()["activities"] == 0
    after = plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"])
    assert (after["events"], after["runs"], after["activities"]) == (before["events"] + 1, before["runs"] + 1,
                                                                    before["activities"])


@pytest.mark.parametrize(("body", "content_type"), [
    (b"this is not JSON", "text/plain"),
    (b'{"action": "opened", "repository": {"id": 700100200}}', "application/json"),  # no issue, no sender
    (b'[1, 2, 3]', "application/json"),
    (b'{"action": "created", "repository": {"id": "not a number"}, "sender": {"id": 1, "login": "x"}}',
     "application/json"),
])
def test_a_payload_not_understood_is_archived_and_answered_202(api, community_tenant, github_plugin, body,
                                                               content_type):
    before = plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"])
    event = "star" if b"created" in body else "issues"
    answer = github_delivery(api, github_plugin["webhook_url"], event, body, github_plugin["webhook_secret"],
                             content_type=content_type)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "not_understood"
    after = plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"])
    assert after["events"] == before["events"] + 1 and after["activities"] == before["activities"]


def test_a_push_links_the_pushers_commit_email_to_their_github_account(api, community_tenant, github_plugin,
                                                                       tenant_conn):
    answer = github_delivery(api, github_plugin["webhook_url"], "push", github_sample("push"),
                             github_plugin["webhook_secret"])
    assert answer.status_code == 202 and answer.json()["status"] == "archived"
    with tenant_conn() as conn:
        account = conn.execute("SELECT email, display_name FROM accounts WHERE provider = 'github' "
                               "AND external_user_id = %s", (KEN,)).fetchone()
    assert account["email"] == "kenji.sato@example.org"


def test_the_run_of_a_delivery_records_its_counts(api, community_tenant, owner_headers, github_plugin):
    answer = github_delivery(api, github_plugin["webhook_url"], "release", github_sample("release.published"),
                             github_plugin["webhook_secret"])
    runs = api.get(f"/v1/plugins/{github_plugin['plugin_id']}/runs", headers=owner_headers, params={"limit": 1})
    [run] = runs.json()["items"]
    assert run["run_id"] == answer.json()["run_id"]
    assert (run["trigger"], run["status"], run["result"]["event_type"]) == ("webhook", "success", "release")
    assert run["finished_at"] is not None


def test_one_tenants_url_never_writes_into_another(api, runtime, community_tenant, github_plugin):
    other = new_tenant(pool=COMMUNITY_POOL)
    theirs = create_plugin(api, other.headers, kind="github")
    before_mine = plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"])

    # their URL with their secret writes into their tenant only
    answer = github_delivery(api, theirs["webhook_url"], "star", github_sample("star.created"),
                             theirs["webhook_secret"])
    assert answer.status_code == 200
    assert plugin_counts(other.tenant_id, theirs["plugin_id"])["activities"] == 1
    assert plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"]) == before_mine

    # my secret on their URL is refused
    assert github_delivery(api, theirs["webhook_url"], "star", github_sample("star.created"),
                           github_plugin["webhook_secret"]).status_code == 401

    # a token Funnel signed, naming their tenant with my plugin: RLS hides my plugin there
    crossed = webhooks.webhook_url(runtime.api_url, other.tenant_id, github_plugin["plugin_id"])
    assert github_delivery(api, crossed, "star", github_sample("star.created"),
                           github_plugin["webhook_secret"]).status_code == 404

    # a token edited to name my tenant with their plugin id no longer verifies
    signature = theirs["webhook_url"].rsplit("/", 1)[1].split(".")[1]
    forged = webhooks._b64(f'["pw","{community_tenant.tenant_id}","{theirs["plugin_id"]}"]'.encode())
    base = theirs["webhook_url"].rsplit("/", 1)[0]
    assert github_delivery(api, f"{base}/{forged}.{signature}", "star", github_sample("star.created"),
                           theirs["webhook_secret"]).status_code == 404
    assert github_delivery(api, f"{base}/not-a-token", "ping", github_sample("ping"),
                           theirs["webhook_secret"]).status_code == 404
    assert plugin_counts(community_tenant.tenant_id, github_plugin["plugin_id"]) == before_mine


def test_a_disabled_plugin_refuses_deliveries(api, owner_headers, community_tenant):
    plugin = create_plugin(api, owner_headers, kind="github", enabled=False)
    answer = github_delivery(api, plugin["webhook_url"], "ping", github_sample("ping"), plugin["webhook_secret"])
    assert answer.status_code == 409
    assert plugin_counts(community_tenant.tenant_id, plugin["plugin_id"])["events"] == 0
