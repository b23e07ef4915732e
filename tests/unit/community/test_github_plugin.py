"""The pure rules of the community plugins, without a database or a network: the webhook URL token, GitHub's and
Funnel's signatures, what each GitHub event means (on the real-shaped samples), and the pull's stops and cursors
over a fake GitHub API."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from funnel.community import github, webhooks
from funnel.platform.errors import NotFound, Unauthorized
from tests.support.plugin_webhooks import GITHUB_SAMPLES, github_sample

KEY = b"k" * 32
TENANT, PLUGIN = "0b6a3c1e-7a51-4b8e-9c0d-2f4e6a8b0c1d", "5d7f9b1c-3e5a-4c7e-8f0a-1b3d5f7a9c2e"


def test_a_token_names_its_tenant_and_plugin_and_nothing_else_verifies():
    token = webhooks.sign_target(TENANT, PLUGIN, KEY)
    assert webhooks.verify_target(token, KEY) == (TENANT, PLUGIN)
    payload, signature = token.split(".")
    forged = webhooks._b64(json.dumps(["pw", "another-tenant", PLUGIN]).encode())
    for bad in (f"{forged}.{signature}", f"{payload}.{signature[:-1]}A", payload, "", "a.b.c",
                webhooks.sign_target(TENANT, PLUGIN, b"x" * 32)):
        with pytest.raises(NotFound):
            webhooks.verify_target(bad, KEY)
    # a token of another kind signed with the same key (as a tracking token would be) is no webhook token
    other_kind = webhooks._b64(json.dumps(["o", TENANT, PLUGIN]).encode())
    with pytest.raises(NotFound):
        webhooks.verify_target(f"{other_kind}.{webhooks._token_signature(KEY, other_kind)}", KEY)


def test_githubs_signature_is_the_hex_hmac_of_the_raw_body():
    body = b'{"zen": "Design for failure."}'
    webhooks.verify_github_signature("s3cret", body, webhooks.github_signature("s3cret", body))
    for header in (None, "", webhooks.github_signature("other", body), webhooks.github_signature("s3cret", body + b" "),
                   webhooks.github_signature("s3cret", body).replace("sha256=", "sha1=")):
        with pytest.raises(Unauthorized):
            webhooks.verify_github_signature("s3cret", body, header)


def test_the_generic_signature_covers_the_timestamp_within_five_minutes():
    body, now = b'{"events": []}', 1_750_000_000.0
    for skew in (0, 300, -300):
        stamp = str(int(now) + skew)
        webhooks.verify_generic_signature("s3cret", body, stamp, webhooks.generic_signature("s3cret", stamp, body),
                                          now=now)
    for stamp in (str(int(now) - 301), str(int(now) + 301)):
        with pytest.raises(Unauthorized, match="5|300"):
            webhooks.verify_generic_signature("s3cret", body, stamp,
                                              webhooks.generic_signature("s3cret", stamp, body), now=now)
    stamp = str(int(now))
    with pytest.raises(Unauthorized):  # the signature of another moment
        webhooks.verify_generic_signature("s3cret", body, stamp,
                                          webhooks.generic_signature("s3cret", str(int(now) - 1), body), now=now)
    for bad in (None, "", "-5", "1.5e9"):
        with pytest.raises(Unauthorized):
            webhooks.verify_generic_signature("s3cret", body, bad, "sha256=00", now=now)


@pytest.mark.parametrize(("sample", "event", "action", "login"), [
    ("star.created", "star", "star", "hana-dev"),
    ("watch.started", "watch", "watch", "hana-dev"),
    ("fork", "fork", "fork", "kenji-oss"),
    ("issues.opened", "issues", "issue", "hana-dev"),
    ("issues.closed", "issues", "issue_closed", "maintainer-mika"),
    ("issue_comment.created", "issue_comment", "comment", "kenji-oss"),
    ("pull_request.opened", "pull_request", "pull_request", "kenji-oss"),
    ("pull_request.closed", "pull_request", "pull_request_merged", "kenji-oss"),
    ("pull_request_review.submitted", "pull_request_review", "comment", "maintainer-mika"),
    ("pull_request_review_comment.created", "pull_request_review_comment", "comment", "maintainer-mika"),
    ("discussion.created", "discussion", "discussion", "hana-dev"),
    ("discussion.answered", "discussion", "answer", "maintainer-mika"),
    ("discussion_comment.created", "discussion_comment", "comment", "maintainer-mika"),
    ("release.published", "release", "release", "maintainer-mika"),
])
def test_each_event_means_one_activity_of_its_actor_on_the_repository(sample, event, action, login):
    [item] = github.delivery_items(event, "d-1", github_sample(sample)).items
    assert (item["action"], item["account"]["handle"], item["account"]["provider"]) == (action, login, "github")
    assert item["resource"] == {"category": "repo", "external_id": "700100200", "title": "funnel-demo/sdk",
                                "url": "https://github.com/funnel-demo/sdk", "group_key": "funnel-demo/sdk"}
    assert item["occurred_at"].tzinfo is not None and item["source"] == "github"


def test_openings_and_stars_have_keys_the_pull_gives_too_and_the_rest_the_delivery():
    keys = {name: github.delivery_items(event, "d-9", github_sample(name)).items[0]["dedup_key"]
            for name, event in (("star.created", "star"), ("issues.opened", "issues"),
                                ("pull_request.opened", "pull_request"), ("issues.closed", "issues"))}
    assert keys == {"star.created": "github:star:700100200:5550101:2025-03-01T12:34:56Z",
                    "issues.opened": "github:issue:700100200:12",
                    "pull_request.opened": "github:pull_request:700100200:13",
                    "issues.closed": "github:delivery:d-9:0"}


def test_every_sample_is_a_known_shape():
    names = {path.stem for path in GITHUB_SAMPLES.glob("*.json")}
    assert {"ping", "push", "issues.labeled"} < names and len(names) >= 17


@pytest.mark.parametrize(("event", "payload"), [("ping", "ping"), ("check_suite", "ping"),
                                                ("issues", "issues.labeled")])
def test_other_events_make_no_activity_and_say_so(event, payload):
    mapped = github.delivery_items(event, "d", github_sample(payload))
    assert mapped.items == [] and mapped.note.startswith("archived")


@pytest.mark.parametrize("payload", [[], "text", {"action": "created"},
                                     {"action": "created", "repository": {"id": 1}, "sender": {"login": "x"}}])
def test_a_payload_without_what_its_event_carries_is_not_understood(payload):
    with pytest.raises(github.NotUnderstood):
        github.delivery_items("star", "d", payload)


def test_a_push_gives_the_pushers_own_commit_emails_personal_first():
    payload = github_sample("push")
    payload["commits"].append({"author": {"name": "Kenji", "email": "5550202+kenji-oss@users.noreply.github.com",
                                          "username": "kenji-oss"}})
    payload["commits"].append({"author": {"name": "Someone", "email": "someone@example.com", "username": "other"}})
    mapped = github.delivery_items("push", "d", payload)
    assert mapped.items == []
    [account] = mapped.accounts
    assert (account.external_user_id, account.email) == ("5550202", "kenji.sato@example.org")
    assert account.attributes["commit_emails"] == ["kenji.sato@example.org",
                                                   "5550202+kenji-oss@users.noreply.github.com"]


# ---------------------------------------------------------------- the pull over a fake API

class FakeApi:
    """GitHub's answers by URL; ``limited_after`` requests, the next one is a rate limit."""

    def __init__(self, pages: dict[str, github.Answer], limited_after: int | None = None) -> None:
        self.pages, self.limited_after, self.requests = pages, limited_after, 0
        self.seen: list[str] = []

    def url(self, path: str) -> str:
        return f"https://api.example{path}"

    def get(self, url: str, accept: str = github.JSON_MEDIA_TYPE) -> github.Answer:
        self.requests += 1
        self.seen.append(url)
        if self.limited_after is not None and self.requests > self.limited_after:
            raise github.RateLimited(datetime(2030, 1, 1, tzinfo=UTC), "limited")
        return self.pages[url]


def _stargazers(first: int, count: int) -> list[dict]:
    return [{"starred_at": f"2025-01-01T00:00:{n % 60:02d}Z", "user": {"id": n, "login": f"u{n}"}}
            for n in range(first, first + count)]


REPO = github.Answer({"id": 42, "full_name": "o/r", "html_url": "https://github.com/o/r"}, None, None)
BASE = "https://api.example/repos/o/r"
STARS_1 = f"{BASE}/stargazers?per_page=100"
STARS_2 = "https://api.example/repositories/42/stargazers?per_page=100&page=2"
ISSUES = f"{BASE}/issues?state=all&sort=updated&direction=asc&per_page=100"


def _pull(api: FakeApi, state: dict | None = None, seconds: float = 60, **config) -> tuple[github.PullOutcome,
                                                                                          list[dict], list]:
    saved: list[dict] = []
    ingested: list[list] = []

    def ingest(items):
        ingested.append(items)
        return {"inserted": len(items), "duplicates": 0}

    outcome = github.pull(api, {"repositories": ["o/r"], **config}, state or {}, ingest, saved.append,
                          time.monotonic() + seconds)
    return outcome, saved, ingested


def test_a_rate_limit_stops_the_pull_with_the_cursor_at_the_next_page():
    api = FakeApi({BASE: REPO, STARS_1: github.Answer(_stargazers(0, 100), STARS_2, None)}, limited_after=2)
    outcome, saved, ingested = _pull(api)
    assert outcome.status == "partial" and outcome.result["rate_limited_until"] == "2030-01-01T00:00:00+00:00"
    assert saved[-1]["repos"]["o/r"]["stargazers_url"] == STARS_2 and len(ingested[0]) == 100


def test_an_answer_with_no_quota_left_is_used_then_the_pull_stops():
    exhausted = datetime(2030, 1, 1, 1, tzinfo=UTC)
    api = FakeApi({BASE: REPO, STARS_1: github.Answer(_stargazers(0, 3), STARS_2, exhausted)})
    outcome, saved, ingested = _pull(api)
    assert outcome.status == "partial" and api.seen == [BASE, STARS_1] and len(ingested[0]) == 3
    assert saved[-1]["rate_limited_until"] == exhausted.isoformat()


def test_a_run_before_the_reset_asks_nothing():
    later = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    api = FakeApi({})
    outcome, saved, _ = _pull(api, {"rate_limited_until": later})
    assert outcome.status == "partial" and api.requests == 0 and saved == []


def test_the_time_budget_stops_the_pull_and_keeps_the_cursor():
    api = FakeApi({BASE: REPO})
    outcome, _, _ = _pull(api, seconds=-1)
    assert outcome.status == "partial" and "time budget" in outcome.result["stopped"]


def test_the_last_stargazers_page_is_where_the_next_run_starts_and_issues_keep_since():
    issues = [{"number": 1, "user": {"id": 7, "login": "a"}, "created_at": "2025-01-02T00:00:00Z",
               "updated_at": "2025-01-05T00:00:00Z"},
              {"number": 2, "user": {"id": 8, "login": "b"}, "created_at": "2025-01-03T00:00:00Z",
               "updated_at": "2025-01-06T00:00:00Z", "pull_request": {"url": "x"}}]
    api = FakeApi({BASE: REPO, STARS_1: github.Answer(_stargazers(0, 100), STARS_2, None),
                   STARS_2: github.Answer(_stargazers(100, 5), None, None),
                   ISSUES: github.Answer(issues, None, None)})
    outcome, saved, ingested = _pull(api)
    assert outcome.status == "success" and outcome.result["activities"] == 107
    assert saved[-1]["repos"]["o/r"] == {"stargazers_url": STARS_2, "issues_since": "2025-01-06T00:00:00Z"}
    assert [i["action"] for i in ingested[-1]] == ["issue", "pull_request"]
    assert ingested[-1][1]["dedup_key"] == "github:pull_request:42:2"


def test_a_link_to_another_origin_is_not_followed():
    class Client:
        def get(self, url, headers):
            raise AssertionError("no request may leave the API's origin")

    api = github.GithubApi(Client(), "https://api.github.com", "token")  # type: ignore[arg-type]
    with pytest.raises(github.ApiError, match="outside"):
        api.get("https://evil.example/repositories/1/stargazers?page=2")
    with pytest.raises(github.ApiError):
        api.get("http://api.github.com/repos/o/r")  # not even the same host over another scheme
