"""GitHub: what its webhook deliveries and REST answers mean as activities, and the REST pull of stargazers and
issues. Pure mapping and HTTP; what is written (and how a run is recorded) is ``funnel.community.plugins``'.

**Webhook events** (payloads as GitHub documents them; trimmed real-shaped samples in
tests/fixtures/community/github/). The actor is the event's ``sender`` (an account of provider ``github``: its
numeric id, login, html_url, avatar_url), except where the event names who did the thing (the answer's author of
``discussion answered``, the author of a merged pull request); the repository is a resource (category ``repo``,
``external_id`` the repository id). Actions follow the funnel map (DEFAULT_FUNNEL_MAP in the community migration):

| event | action | activity |
|---|---|---|
| star | created | star |
| watch | started | watch |
| fork | - | fork |
| issues | opened / closed / reopened | issue / issue_closed / issue_reopened |
| issue_comment, pull_request_review_comment, discussion_comment | created | comment |
| pull_request_review | submitted | comment (``metadata.kind`` pull_request_review) |
| pull_request | opened / reopened / closed | pull_request / pull_request_reopened / pull_request_merged (by the |
|  |  | author) or pull_request_closed |
| discussion | created / answered | discussion / answer (the answer's author) |
| release | published | release |
| push | - | none: the pusher's commit e-mails join their GitHub account (identity only) |

Every other event and action is archived only. ``watch`` / ``started`` is GitHub's legacy name of a star (sent beside
``star`` / ``created``): a hook subscribed to both gives a star a ``star`` and a ``watch`` activity.

Dedup keys: a star, an issue opening and a pull request opening have keys of their own
(``github:star:<repo id>:<user id>:<starred_at>``, ``github:issue:<repo id>:<number>``,
``github:pull_request:<repo id>:<number>``), the same ones the REST pull gives, so a star seen by both is one
activity; every other activity's key is ``github:delivery:<X-GitHub-Delivery>:<n>``.

**REST pull** (``pull``): ``GET /repos/{repo}`` (its id), ``/repos/{repo}/stargazers`` with
``Accept: application/vnd.github.star+json`` (``starred_at``) and ``/repos/{repo}/issues?state=all&sort=updated
&direction=asc&since=...`` (issues and pull requests as issues: their openings), 100 per page, following
``Link: rel="next"`` only on the API's own origin. Rate limits: a 403/429 with ``X-RateLimit-Remaining: 0`` or
``Retry-After`` stops the run (``partial``) with the time it may resume; an answer whose remaining count is 0 is
used and then stops the run the same way. The cursor (the stargazers page to fetch next, the issues' ``since``)
is kept per repository and saved after every page, so the next run resumes where this one stopped.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from funnel.community.identity import AccountIn
from funnel.observability import tracer

if TYPE_CHECKING:
    import httpx

PROVIDER = "github"
SOURCE = "github"
API_VERSION = "2022-11-28"
STAR_MEDIA_TYPE = "application/vnd.github.star+json"
JSON_MEDIA_TYPE = "application/vnd.github+json"
PER_PAGE = 100
REQUEST_TIMEOUT_SECONDS = 10.0


class NotUnderstood(ValueError):
    """A payload that does not carry what its event type should (archived, answered 202)."""


@dataclass
class Mapped:
    """What one delivery means: activity items (``funnel.community.activities.ingest``'s shape), accounts to
    resolve without an activity, and why nothing came of it when nothing did."""
    items: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[AccountIn] = field(default_factory=list)
    note: str | None = None


# ---------------------------------------------------------------- payload pieces

def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise NotUnderstood(f"not understood: the payload has no `{key}` object")
    return value


def _optional_object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def account(user: Any, *, email: str | None = None, display_name: str | None = None) -> dict[str, Any]:
    """A GitHub user object as an activity's account (ActivityAccount's shape)."""
    if not isinstance(user, dict) or not isinstance(user.get("id"), int) or not _text(user.get("login")):
        raise NotUnderstood("not understood: a user without a numeric id and a login")
    found = {"provider": PROVIDER, "external_user_id": str(user["id"]), "handle": user["login"],
             "profile_url": _text(user.get("html_url")), "avatar_url": _text(user.get("avatar_url")),
             "attributes": {"type": user["type"]} if _text(user.get("type")) else {}}
    if email:
        found["email"] = email
    if display_name:
        found["display_name"] = display_name
    return found


def repository_resource(repo: Any) -> dict[str, Any]:
    if not isinstance(repo, dict) or not isinstance(repo.get("id"), int):
        raise NotUnderstood("not understood: a repository without a numeric id")
    return {"category": "repo", "external_id": str(repo["id"]), "title": _text(repo.get("full_name")),
            "url": _text(repo.get("html_url")), "group_key": _text(repo.get("full_name"))}


def _item(action: str, actor: dict[str, Any], resource: dict[str, Any], occurred_at: datetime | None,
          dedup_key: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"account": actor, "action": action, "resource": resource, "source": SOURCE,
            "occurred_at": occurred_at or datetime.now(UTC), "dedup_key": dedup_key,
            "metadata": {k: v for k, v in metadata.items() if v is not None}}


def star_key(repo_id: Any, user_id: Any, starred_at: Any) -> str:
    return f"github:star:{repo_id}:{user_id}:{starred_at}"


def opening_key(kind: str, repo_id: Any, number: Any) -> str:
    return f"github:{kind}:{repo_id}:{number}"


# ---------------------------------------------------------------- webhook deliveries

def delivery_items(event: str, delivery: str, payload: Any) -> Mapped:
    """What the delivery ``delivery`` of GitHub event ``event`` means; NotUnderstood for a payload without what
    that event carries."""
    if not isinstance(payload, dict):
        raise NotUnderstood("not understood: the payload is not a JSON object")
    action = payload.get("action")
    handler = _EVENTS.get(event)
    if handler is None:
        return Mapped(note=f"archived: GitHub event `{event or '(none)'}` makes no activity")
    mapped = handler(payload, action, f"github:delivery:{delivery}")
    if not mapped.items and not mapped.accounts and mapped.note is None:
        mapped.note = f"archived: `{event}` with action `{action}` makes no activity"
    return mapped


def _repo_and_sender(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    repo = _object(payload, "repository")
    return repo, repository_resource(repo), account(payload.get("sender"))


def _star(payload: dict[str, Any], action: Any, key: str) -> Mapped:
    if action != "created":
        return Mapped()
    repo, resource, sender = _repo_and_sender(payload)
    starred_at = payload.get("starred_at")
    return Mapped([_item("star", sender, resource, parse_time(starred_at),
                         star_key(repo["id"], sender["external_user_id"], starred_at), {"event": "star"})])


def _watch(payload: dict[str, Any], action: Any, key: str) -> Mapped:
    if action != "started":
        return Mapped()
    _, resource, sender = _repo_and_sender(payload)
    return Mapped([_item("watch", sender, resource, None, f"{key}:0", {"event": "watch"})])


def _fork(payload: dict[str, Any], action: Any, key: str) -> Mapped:
    _, resource, sender = _repo_and_sender(payload)
    forkee = _object(payload, "forkee")
    return Mapped([_item("fork", sender, resource, parse_time(forkee.get("created_at")), f"{key}:0",
                         {"event": "fork", "fork": _text(forkee.get("full_name")),
                          "url": _text(forkee.get("html_url"))})])


ISSUE_ACTIONS = {"opened": "issue", "closed": "issue_closed", "reopened": "issue_reopened"}


def _issues(payload: dict[str, Any], action: Any, key: str) -> Mapped:
    if action not in ISSUE_ACTIONS:
        return Mapped()
    repo, resource, sender = _repo_and_sender(payload)
    issue = _object(payload, "issue")
    if action == "opened":
        occurred, dedup = parse_time(issue.get("created_at")), opening_key("issue", repo["id"], issue.get("number"))
    else:
        occurred = parse_time(issue.get("closed_at") if action == "closed" else issue.get("updated_at"))
        dedup = f"{key}:0"
    return Mapped([_item(ISSUE_ACTIONS[action], sender, resource, occurred, dedup,
                         {"event": "issues", "github_action": action, "number": issue.get("number"),
                          "title": _text(issue.get("title")), "url": _text(issue.get("html_url"))})])


def _comment(kind: str, parent_key: str) -> Callable[[dict[str, Any], Any, str], Mapped]:
    def mapped(payload: dict[str, Any], action: Any, key: str) -> Mapped:
        if action != "created":
            return Mapped()
        _, resource, sender = _repo_and_sender(payload)
        comment = _object(payload, "comment")
        parent = _optional_object(payload, parent_key)
        return Mapped([_item("comment", sender, resource, parse_time(comment.get("created_at")), f"{key}:0",
                             {"event": kind, "kind": kind, "number": parent.get("number"),
                              "on_pull_request": True if kind == "issue_comment" and parent.get("pull_request")
                              else None, "title": _text(parent.get("title")),
                              "url": _text(comment.get("html_url"))})])
    return mapped


def _review(payload: dict[str, Any], action: Any, key: str) -> Mapped:
    if action != "submitted":
        return Mapped()
    _, resource, sender = _repo_and_sender(payload)
    review = _object(payload, "review")
    pull = _optional_object(payload, "pull_request")
    return Mapped([_item("comment", sender, resource, parse_time(review.get("submitted_at")), f"{key}:0",
                         {"event": "pull_request_review", "kind": "pull_request_review",
                          "state": _text(review.get("state")), "number": pull.get("number"),
                          "url": _text(review.get("html_url"))})])


def _pull_request(payload: dict[str, Any], action: Any, key: str) -> Mapped:
    if action not in ("opened", "reopened", "closed"):
        return Mapped()
    repo, resource, sender = _repo_and_sender(payload)
    pull = _object(payload, "pull_request")
    details = {"event": "pull_request", "github_action": action, "number": pull.get("number"),
               "title": _text(pull.get("title")), "url": _text(pull.get("html_url"))}
    if action == "opened":
        return Mapped([_item("pull_request", sender, resource, parse_time(pull.get("created_at")),
                             opening_key("pull_request", repo["id"], pull.get("number")), details)])
    if action == "reopened":
        return Mapped([_item("pull_request_reopened", sender, resource, parse_time(pull.get("updated_at")),
                             f"{key}:0", details)])
    if pull.get("merged") is True or pull.get("merged_at"):
        # the contribution is the author's; who pressed the button is kept in the metadata
        author = account(pull.get("user")) if isinstance(pull.get("user"), dict) else sender
        return Mapped([_item("pull_request_merged", author, resource, parse_time(pull.get("merged_at")),
                             f"{key}:0", {**details, "merged_by": sender["handle"]})])
    return Mapped([_item("pull_request_closed", sender, resource, parse_time(pull.get("closed_at")), f"{key}:0",
                         details)])


def _discussion(payload: dict[str, Any], action: Any, key: str) -> Mapped:
    if action not in ("created", "answered"):
        return Mapped()
    _, resource, sender = _repo_and_sender(payload)
    discussion = _object(payload, "discussion")
    details = {"event": "discussion", "github_action": action, "number": discussion.get("number"),
               "title": _text(discussion.get("title")), "url": _text(discussion.get("html_url"))}
    if action == "created":
        return Mapped([_item("discussion", sender, resource, parse_time(discussion.get("created_at")), f"{key}:0",
                             details)])
    answer = _object(payload, "answer")
    return Mapped([_item("answer", account(answer.get("user")), resource,
                         parse_time(discussion.get("answer_chosen_at") or answer.get("created_at")), f"{key}:0",
                         {**details, "url": _text(answer.get("html_url")), "chosen_by": sender["handle"]})])


def _release(payload: dict[str, Any], action: Any, key: str) -> Mapped:
    if action != "published":
        return Mapped()
    _, resource, sender = _repo_and_sender(payload)
    release = _object(payload, "release")
    return Mapped([_item("release", sender, resource, parse_time(release.get("published_at")), f"{key}:0",
                         {"event": "release", "tag": _text(release.get("tag_name")),
                          "name": _text(release.get("name")), "url": _text(release.get("html_url"))})])


def commit_emails(payload: dict[str, Any], login: str) -> tuple[list[str], str | None]:
    """The e-mail addresses (personal ones first, GitHub no-reply ones last) and name the sender's own commits
    carry (``author.username`` is their login)."""
    commits = [c for c in payload.get("commits") or [] if isinstance(c, dict)]
    if isinstance(payload.get("head_commit"), dict):
        commits.append(payload["head_commit"])
    emails: list[str] = []
    name = None
    for commit in commits:
        author = _optional_object(commit, "author")
        if author.get("username") == login and _text(author.get("email")) and author["email"] not in emails:
            emails.append(author["email"])
            name = name or _text(author.get("name"))
    emails.sort(key=lambda address: address.endswith("@users.noreply.github.com"))
    return emails, name


def _push(payload: dict[str, Any], action: Any, key: str) -> Mapped:
    sender = account(payload.get("sender"))
    emails, name = commit_emails(payload, sender["handle"])
    if not emails:
        return Mapped(note="archived: a push without commits of its sender makes no activity")
    found = AccountIn(provider=PROVIDER, external_user_id=sender["external_user_id"], handle=sender["handle"],
                      email=emails[0], display_name=name, profile_url=sender["profile_url"],
                      avatar_url=sender["avatar_url"], attributes={**sender["attributes"], "commit_emails": emails})
    return Mapped(accounts=[found], note="archived: the pusher's commit e-mails were linked to their account")


_EVENTS: dict[str, Callable[[dict[str, Any], Any, str], Mapped]] = {
    "star": _star, "watch": _watch, "fork": _fork, "issues": _issues,
    "issue_comment": _comment("issue_comment", "issue"),
    "pull_request_review_comment": _comment("pull_request_review_comment", "pull_request"),
    "discussion_comment": _comment("discussion_comment", "discussion"),
    "pull_request_review": _review, "pull_request": _pull_request, "discussion": _discussion,
    "release": _release, "push": _push,
}


# ---------------------------------------------------------------- REST pull

class RateLimited(Exception):
    def __init__(self, until: datetime, why: str) -> None:
        super().__init__(why)
        self.until = until


class ApiError(Exception):
    """An answer the pull cannot use (the repository is gone, the token is refused...)."""


@dataclass
class Answer:
    body: Any
    next_url: str | None
    exhausted_until: datetime | None  # the quota is used up: stop after this answer


def _epoch(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value and value.strip().isdigit() else None


class GithubApi:
    """GitHub's REST API on ``base_url`` through the SSRF-guarded client; ``Link`` pages are followed only on
    the API's own origin (a next URL elsewhere would carry the token away)."""

    def __init__(self, client: httpx.Client, base_url: str, token: str | None) -> None:
        self.client, self.base_url = client, base_url.rstrip("/")
        self.origin = urlsplit(self.base_url)[:2] + (urlsplit(self.base_url).port,)
        self.headers = {"Accept": JSON_MEDIA_TYPE, "X-GitHub-Api-Version": API_VERSION, "User-Agent": "Funnel"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.requests = 0

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme, parts.netloc, parts.port) == self.origin

    def get(self, url: str, accept: str = JSON_MEDIA_TYPE) -> Answer:
        import httpx

        if not self.same_origin(url):
            raise ApiError(f"refused to follow a URL outside {self.base_url}")
        self.requests += 1
        try:
            with tracer.subsegment("github.get"):
                response = self.client.get(url, headers={**self.headers, "Accept": accept})
        except httpx.HTTPError as exc:
            raise ApiError(f"GitHub did not answer: {type(exc).__name__}") from exc
        remaining = response.headers.get("x-ratelimit-remaining")
        reset = _epoch(response.headers.get("x-ratelimit-reset"))
        retry_after = response.headers.get("retry-after")
        if response.status_code in (403, 429) and (remaining == "0" or retry_after):
            until = (datetime.fromtimestamp(time.time() + int(retry_after), UTC)
                     if retry_after and retry_after.strip().isdigit() else reset or datetime.now(UTC))
            raise RateLimited(until, f"GitHub's rate limit (HTTP {response.status_code}); resumes at "
                                     f"{until.isoformat()}")
        if response.status_code != 200:
            raise ApiError(f"GitHub answered {response.status_code} for {urlsplit(url).path}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(f"GitHub answered no JSON for {urlsplit(url).path}") from exc
        next_url = response.links.get("next", {}).get("url")
        return Answer(body, next_url, reset or datetime.now(UTC) if remaining == "0" else None)



@dataclass
class PullOutcome:
    status: str  # success, partial or failed
    result: dict[str, Any]


Ingest = Callable[[list[dict[str, Any]]], dict[str, Any]]  # items -> {"inserted", "duplicates"}
SaveState = Callable[[dict[str, Any]], None]


def star_items(repo: dict[str, Any], page: Any) -> list[dict[str, Any]]:
    """A stargazers page (``star+json``: ``[{"starred_at", "user"}]``) as star activities."""
    if not isinstance(page, list):
        raise ApiError("the stargazers answer is not a list")
    resource, items = repository_resource(repo), []
    for entry in page:
        if not isinstance(entry, dict) or not isinstance(entry.get("user"), dict):
            continue
        try:
            actor = account(entry["user"])
        except NotUnderstood:
            continue
        starred_at = entry.get("starred_at")
        items.append(_item("star", actor, resource, parse_time(starred_at),
                           star_key(repo["id"], actor["external_user_id"], starred_at), {"event": "star"}))
    return items


def issue_items(repo: dict[str, Any], page: Any) -> tuple[list[dict[str, Any]], str | None]:
    """An issues page as the openings of its issues and pull requests, and the latest ``updated_at`` on it."""
    if not isinstance(page, list):
        raise ApiError("the issues answer is not a list")
    resource, items, latest = repository_resource(repo), [], None
    for issue in page:
        if not isinstance(issue, dict):
            continue
        if isinstance(issue.get("updated_at"), str) and (latest is None or issue["updated_at"] > latest):
            latest = issue["updated_at"]
        try:
            actor = account(issue.get("user"))
        except NotUnderstood:
            continue
        kind = "pull_request" if isinstance(issue.get("pull_request"), dict) else "issue"
        items.append(_item(kind, actor, resource, parse_time(issue.get("created_at")),
                           opening_key(kind, repo["id"], issue.get("number")),
                           {"event": "pull", "github_action": "opened", "number": issue.get("number"),
                            "title": _text(issue.get("title")), "url": _text(issue.get("html_url"))}))
    return items, latest


def pull(api: GithubApi, config: dict[str, Any], state: dict[str, Any], ingest: Ingest, save_state: SaveState,
         deadline: float) -> PullOutcome:
    """Pull the configured repositories' stargazers and issues from where ``state`` says the last run stopped,
    until done, rate-limited or ``deadline`` (``time.monotonic()``); ``save_state`` after every page."""
    state = {**state, "repos": dict(state.get("repos") or {})}
    counts = {"requests": 0, "pages": 0, "activities": 0, "duplicates": 0}
    errors: list[dict[str, str]] = []
    stopped: str | None = None
    limited = _still_limited(state)
    if limited:
        return PullOutcome("partial", {**counts, "rate_limited_until": limited,
                                       "stopped": "rate-limited since an earlier run"})
    state.pop("rate_limited_until", None)

    def take(items: list[dict[str, Any]]) -> None:
        if items:
            outcome = ingest(items)
            counts["activities"] += outcome["inserted"]
            counts["duplicates"] += outcome["duplicates"]

    for name in config.get("repositories") or []:
        if stopped:
            break
        cursor = dict(state["repos"].get(name) or {})
        issues_url: str | None = None
        try:
            repo = api.get(api.url(f"/repos/{name}")).body
            if not isinstance(repo, dict) or not isinstance(repo.get("id"), int):
                raise ApiError(f"{name}: not a repository")
            counts["pages"] += 1
            for what in ("stargazers", "issues"):
                if not config.get(f"pull_{what}", True):
                    continue
                while not stopped:
                    if time.monotonic() > deadline:
                        stopped = "time budget used; the next run resumes from the cursor"
                        break
                    if what == "stargazers":
                        url = cursor.get("stargazers_url") or api.url(f"/repos/{name}/stargazers?per_page={PER_PAGE}")
                        answer = api.get(url, STAR_MEDIA_TYPE)
                        take(star_items(repo, answer.body))
                        # the last page is fetched again next time: new stars are appended to it
                        cursor["stargazers_url"] = answer.next_url or url
                    else:
                        # across runs only `since` is kept: pages sorted by update shift as issues change
                        since = cursor.get("issues_since")
                        url = issues_url or api.url(
                            f"/repos/{name}/issues?state=all&sort=updated&direction=asc&per_page={PER_PAGE}"
                            + (f"&since={since}" if since else ""))
                        answer = api.get(url)
                        items, latest = issue_items(repo, answer.body)
                        take(items)
                        issues_url = answer.next_url
                        if latest and (since is None or latest > since):
                            cursor["issues_since"] = latest
                    counts["pages"] += 1
                    state["repos"][name] = cursor
                    save_state(state)
                    if answer.exhausted_until:
                        raise RateLimited(answer.exhausted_until, "GitHub's rate limit is used up")
                    if answer.next_url is None:
                        break
        except RateLimited as exc:
            state["rate_limited_until"] = exc.until.isoformat()
            save_state(state)
            stopped = f"rate-limited: {exc}"
        except (ApiError, NotUnderstood) as exc:
            errors.append({"repository": name, "error": str(exc)})
    counts["requests"] = api.requests
    result: dict[str, Any] = {**counts, **({"errors": errors} if errors else {})}
    if stopped:
        result["stopped"] = stopped
        if state.get("rate_limited_until"):
            result["rate_limited_until"] = state["rate_limited_until"]
    repositories = len(config.get("repositories") or [])
    if errors and len(errors) == repositories:
        return PullOutcome("failed", result)
    return PullOutcome("partial" if stopped or errors else "success", result)


def _still_limited(state: dict[str, Any]) -> str | None:
    until = parse_time(state.get("rate_limited_until"))
    return until.isoformat() if until and until > datetime.now(UTC) else None
