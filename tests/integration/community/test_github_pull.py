"""The GitHub pull plugin against a local server speaking GitHub's REST shapes (tests/support/github_server.py):
stargazers (with ``starred_at``) and issues of the configured repositories, paged by Link headers; a used-up quota
(``X-RateLimit-Remaining: 0``, a 403 rate-limit answer, a secondary limit's ``Retry-After``) stops the run as
``partial`` with the reset time, and the next run resumes from the cursor; manual runs through the API, cron runs
through CommunityPluginCronFunction."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from funnel.settings import reset_settings
from tests.support.github_server import GithubServer, user
from tests.support.plugin_webhooks import create_plugin

TOKEN = "ghp_testtoken0000000000000000000000000000"


@pytest.fixture(scope="module")
def github_api(runtime):
    with GithubServer(token=TOKEN) as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUNNEL_GITHUB_API_URL", server.url)
        reset_settings()
        yield server
    reset_settings()


@pytest.fixture
def fresh_quota(github_api):
    github_api.quota, github_api.used, github_api.secondary_limit_after = 5000, 0, None
    github_api.requests.clear()
    return github_api


def _stars(repo, count: int, first_id: int) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for n in range(count):
        at = (start + timedelta(minutes=len(repo.stargazers))).strftime("%Y-%m-%dT%H:%M:%SZ")
        repo.stargazers.append((at, user(first_id + n, f"stargazer-{first_id + n}")))


def _plugin(api, owner_headers, *repos: str) -> dict:
    return create_plugin(api, owner_headers, kind="github", config={"repositories": list(repos)},
                         secrets={"token": TOKEN})


def _run(api, owner_headers, plugin) -> dict:
    answer = api.post(f"/v1/plugins/{plugin['plugin_id']}/runs", headers=owner_headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _count(tenant_conn, repo_id: int, action: str | None = None) -> int:
    with tenant_conn() as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM activities a JOIN resources r ON r.resource_id = a.resource_id "
            "WHERE r.category = 'repo' AND r.external_id = %s AND (%s::text IS NULL OR a.action = %s)",
            (str(repo_id), action, action)).fetchone()["n"]


def test_stargazers_and_issues_are_pulled_page_by_page(api, owner_headers, fresh_quota, tenant_conn):
    repo = fresh_quota.add_repo(810001, "octo-org/paged")
    _stars(repo, 250, 6_000_000)
    author = user(6_100_001, "issue-author")
    for n in range(1, 121):
        repo.add_issue(n, author, f"2025-02-01T00:{n // 60:02d}:{n % 60:02d}Z", pull_request=n % 4 == 0)
    plugin = _plugin(api, owner_headers, "octo-org/paged")

    run = _run(api, owner_headers, plugin)
    assert (run["trigger"], run["status"]) == ("manual", "success"), run
    assert run["result"]["activities"] == 370 and run["result"]["pages"] == 6  # repo + 3 + 2 pages
    assert _count(tenant_conn, 810001, "star") == 250
    assert (_count(tenant_conn, 810001, "issue"), _count(tenant_conn, 810001, "pull_request")) == (90, 30)
    paths = [path for path, _ in fresh_quota.requests]
    assert any(p.startswith("/repositories/810001/stargazers?") and "page=3" in p for p in paths)  # Link followed
    stars = [h for p, h in fresh_quota.requests if "/stargazers" in p]
    assert all(h["accept"] == "application/vnd.github.star+json" for h in stars)
    assert all(h["authorization"] == f"Bearer {TOKEN}" for _, h in fresh_quota.requests)
    with tenant_conn() as conn:
        first = conn.execute(
            "SELECT a.occurred_at, acc.provider, acc.external_user_id, acc.handle, a.developer_id FROM activities a "
            "JOIN accounts acc ON acc.account_id = a.account_id WHERE a.dedup_key = %s",
            ("github:star:810001:6000000:2025-01-01T00:00:00Z",)).fetchone()
    assert first["occurred_at"] == datetime(2025, 1, 1, tzinfo=UTC)
    assert (first["provider"], first["external_user_id"], first["handle"]) == ("github", "6000000",
                                                                               "stargazer-6000000")
    assert first["developer_id"] is not None

    # the next run starts from the cursor: the last stargazers page again, issues updated since
    _stars(repo, 3, 6_000_500)
    repo.add_issue(121, author, "2025-02-02T00:00:00Z")
    fresh_quota.requests.clear()
    again = _run(api, owner_headers, plugin)
    assert again["status"] == "success" and again["result"]["activities"] == 4
    stargazer_pages = [p for p, _ in fresh_quota.requests if "/stargazers" in p]
    assert len(stargazer_pages) == 1 and "page=3" in stargazer_pages[0]
    issue_pages = [p for p, _ in fresh_quota.requests if "/issues" in p]
    assert len(issue_pages) == 1 and "since=" in issue_pages[0]
    state = api.get(f"/v1/plugins/{plugin['plugin_id']}", headers=owner_headers).json()["state"]
    assert state["repos"]["octo-org/paged"]["issues_since"] == "2025-02-02T00:00:00Z"


def test_a_used_up_quota_stops_the_run_and_the_next_resumes_from_the_cursor(api, owner_headers, fresh_quota,
                                                                            tenant_conn):
    repo = fresh_quota.add_repo(810002, "octo-org/limited")
    _stars(repo, 450, 7_000_000)
    plugin = _plugin(api, owner_headers, "octo-org/limited")
    fresh_quota.quota = 3  # the repository and two stargazers pages; the second answers Remaining: 0

    run = _run(api, owner_headers, plugin)
    assert run["status"] == "partial", run
    reset = datetime.fromtimestamp(fresh_quota.reset_at, UTC).isoformat()
    assert run["result"]["rate_limited_until"] == reset
    assert _count(tenant_conn, 810002, "star") == 200
    cursor = api.get(f"/v1/plugins/{plugin['plugin_id']}", headers=owner_headers).json()["state"]
    assert cursor["rate_limited_until"] == reset and "page=3" in cursor["repos"]["octo-org/limited"]["stargazers_url"]

    # before the reset: no request at all
    fresh_quota.requests.clear()
    waiting = _run(api, owner_headers, plugin)
    assert waiting["status"] == "partial" and waiting["result"]["requests"] == 0 and fresh_quota.requests == []

    # after the reset (the stored time moved into the past): resumes at page 3, nothing counted twice
    with tenant_conn() as conn:
        conn.execute("UPDATE plugins SET config = jsonb_set(config, '{pull_state,rate_limited_until}', "
                     "to_jsonb('2020-01-01T00:00:00+00:00'::text)) WHERE plugin_id = %s", (plugin["plugin_id"],))
    fresh_quota.quota, fresh_quota.used = 5000, 0
    resumed = _run(api, owner_headers, plugin)
    assert resumed["status"] == "success", resumed
    first_star_page = next(p for p, _ in fresh_quota.requests if "/stargazers" in p)
    assert "page=3" in first_star_page
    assert _count(tenant_conn, 810002, "star") == 450 and resumed["result"]["duplicates"] == 0


def test_a_403_rate_limit_answer_stops_the_run_with_the_reset_time(api, owner_headers, fresh_quota, tenant_conn):
    fresh_quota.add_repo(810003, "octo-org/exhausted")
    plugin = _plugin(api, owner_headers, "octo-org/exhausted")
    fresh_quota.used = fresh_quota.quota  # every request is GitHub's 403 "API rate limit exceeded"
    run = _run(api, owner_headers, plugin)
    assert run["status"] == "partial", run
    assert run["result"]["rate_limited_until"] == datetime.fromtimestamp(fresh_quota.reset_at, UTC).isoformat()
    assert "rate-limited" in run["result"]["stopped"] and _count(tenant_conn, 810003) == 0


def test_a_secondary_limit_honours_retry_after(api, owner_headers, fresh_quota):
    repo = fresh_quota.add_repo(810004, "octo-org/secondary")
    _stars(repo, 150, 7_500_000)
    plugin = _plugin(api, owner_headers, "octo-org/secondary")
    fresh_quota.secondary_limit_after = 2  # the repository and the first page, then 403 with Retry-After: 60
    before = datetime.now(UTC)
    run = _run(api, owner_headers, plugin)
    assert run["status"] == "partial", run
    until = datetime.fromisoformat(run["result"]["rate_limited_until"])
    assert before + timedelta(seconds=55) < until < datetime.now(UTC) + timedelta(seconds=65)


def test_a_missing_repository_is_reported_and_the_others_are_pulled(api, owner_headers, fresh_quota, tenant_conn):
    repo = fresh_quota.add_repo(810005, "octo-org/present")
    _stars(repo, 2, 7_800_000)
    both = _plugin(api, owner_headers, "octo-org/gone", "octo-org/present")
    run = _run(api, owner_headers, both)
    assert run["status"] == "partial" and run["result"]["errors"][0]["repository"] == "octo-org/gone"
    assert "404" in run["result"]["errors"][0]["error"] and _count(tenant_conn, 810005, "star") == 2
    only_missing = _plugin(api, owner_headers, "octo-org/gone")
    assert _run(api, owner_headers, only_missing)["status"] == "failed"


def test_a_refused_token_fails_the_run_without_a_5xx(api, owner_headers, fresh_quota):
    fresh_quota.add_repo(810006, "octo-org/private")
    plugin = create_plugin(api, owner_headers, kind="github", config={"repositories": ["octo-org/private"]},
                           secrets={"token": "ghp_wrong"})
    run = _run(api, owner_headers, plugin)
    assert run["status"] == "failed" and "401" in run["result"]["errors"][0]["error"]


def test_the_cron_pulls_every_tenants_enabled_github_plugins(runtime, api, owner_headers, fresh_quota,
                                                             tenant_conn):
    repo = fresh_quota.add_repo(810007, "octo-org/cron")
    _stars(repo, 5, 7_900_000)
    plugin = _plugin(api, owner_headers, "octo-org/cron")
    disabled = create_plugin(api, owner_headers, kind="github", enabled=False,
                             config={"repositories": ["octo-org/cron"]}, secrets={"token": TOKEN})
    outcome = runtime.invoke("CommunityPluginCronFunction", {})
    assert outcome["failed_tenants"] == 0 and outcome["runs"] >= 1
    assert _count(tenant_conn, 810007, "star") == 5
    runs = api.get(f"/v1/plugins/{plugin['plugin_id']}/runs", headers=owner_headers).json()["items"]
    assert [(r["trigger"], r["status"]) for r in runs] == [("cron", "success")]
    assert api.get(f"/v1/plugins/{disabled['plugin_id']}/runs", headers=owner_headers).json()["items"] == []
