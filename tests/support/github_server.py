"""A local server speaking the part of GitHub's REST API the GitHub pull plugin reads, in GitHub's shapes
(``FUNNEL_GITHUB_API_URL`` points at it): a repository, its stargazers (``application/vnd.github.star+json`` gives
``[{"starred_at", "user"}]``, plain JSON the users) and its issues (``state``, ``sort=updated``, ``direction``,
``since``; pull requests are issues with a ``pull_request`` object), paged by ``per_page``/``page`` with ``Link``
headers on ``/repositories/{id}/...`` URLs as GitHub gives them, and rate-limit headers
(``X-RateLimit-Limit/Remaining/Used/Reset/Resource``): past the quota every request is GitHub's 403 "API rate limit
exceeded"; ``secondary_limit_after`` answers 403 with ``Retry-After`` instead (a secondary rate limit).
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

RATE_LIMIT_MESSAGE = ("API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please "
                      "include the request ID.")
DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"


def user(user_id: int, login: str) -> dict[str, Any]:
    """A GitHub simple user object (trimmed of the *_url templates)."""
    return {"login": login, "id": user_id, "node_id": f"MDQ6VXNlcj{user_id}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4", "gravatar_id": "",
            "url": f"https://api.github.com/users/{login}", "html_url": f"https://github.com/{login}",
            "type": "User", "site_admin": False}


@dataclass
class Repo:
    repo_id: int
    full_name: str
    stargazers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (starred_at, user)
    issues: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        owner = self.full_name.split("/")[0]
        return {"id": self.repo_id, "node_id": f"R_{self.repo_id}", "name": self.full_name.split("/")[1],
                "full_name": self.full_name, "private": False, "owner": user(self.repo_id + 1, owner),
                "html_url": f"https://github.com/{self.full_name}", "description": None, "fork": False,
                "url": f"https://api.github.com/repos/{self.full_name}", "stargazers_count": len(self.stargazers),
                "open_issues_count": len(self.issues), "default_branch": "main"}

    def add_issue(self, number: int, author: dict[str, Any], created_at: str, updated_at: str | None = None,
                  pull_request: bool = False, title: str | None = None) -> dict[str, Any]:
        issue = {"url": f"https://api.github.com/repos/{self.full_name}/issues/{number}",
                 "repository_url": f"https://api.github.com/repos/{self.full_name}",
                 "html_url": f"https://github.com/{self.full_name}/{'pull' if pull_request else 'issues'}/{number}",
                 "id": self.repo_id * 1000 + number, "node_id": f"I_{number}", "number": number,
                 "title": title or f"Issue {number}", "user": author, "labels": [], "state": "open",
                 "locked": False, "assignee": None, "assignees": [], "milestone": None, "comments": 0,
                 "created_at": created_at, "updated_at": updated_at or created_at, "closed_at": None,
                 "author_association": "NONE", "active_lock_reason": None, "body": "", "draft": False}
        if pull_request:
            issue["pull_request"] = {"url": f"https://api.github.com/repos/{self.full_name}/pulls/{number}",
                                     "html_url": f"https://github.com/{self.full_name}/pull/{number}",
                                     "diff_url": f"https://github.com/{self.full_name}/pull/{number}.diff",
                                     "patch_url": f"https://github.com/{self.full_name}/pull/{number}.patch",
                                     "merged_at": None}
        self.issues.append(issue)
        return issue


class GithubServer:
    def __init__(self, token: str = "ghp_testtoken0000000000000000000000000000", quota: int = 5000) -> None:
        self.token = token
        self.quota = quota
        self.used = 0
        self.reset_at = int(time.time()) + 3600
        self.secondary_limit_after: int | None = None  # answer 403 + Retry-After after this many requests
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # noqa: N802 (http.server naming)
                server.handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ life
    def start(self) -> GithubServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="github-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> GithubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_repo(self, repo_id: int, full_name: str) -> Repo:
        repo = self.repos[full_name] = Repo(repo_id, full_name)
        return repo

    # ------------------------------------------------------------ answers
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append((request.path, {k.lower(): v for k, v in request.headers.items()}))
            if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
                return self._reply(request, 401, {"message": "Bad credentials", "documentation_url": DOCS,
                                                  "status": "401"})
            if self.secondary_limit_after is not None and len(self.requests) > self.secondary_limit_after:
                return self._reply(request, 403, {
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
                               "again.", "documentation_url": DOCS, "status": "403"}, {"Retry-After": "60"})
            if self.used >= self.quota:
                return self._reply(request, 403, {"message": RATE_LIMIT_MESSAGE, "documentation_url": DOCS,
                                                  "status": "403"})
            self.used += 1
        repo, rest = self._repo(parts.path)
        if repo is None:
            return self._reply(request, 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})
        if rest == "":
            return self._reply(request, 200, repo.body())
        if rest == "/stargazers":
            star = "application/vnd.github.star+json" in (request.headers.get("accept") or "")
            entries = [{"starred_at": at, "user": who} if star else who for at, who in repo.stargazers]
            return self._page(request, repo, "stargazers", entries, query)
        if rest == "/issues":
            issues = [i for i in repo.issues if query.get("state") == "all" or i["state"] == query.get("state",
                                                                                                          "open")]
            if "since" in query:
                issues = [i for i in issues if i["updated_at"] >= query["since"]]
            key = "updated_at" if query.get("sort") == "updated" else "created_at"
            issues.sort(key=lambda i: (i[key], i["number"]), reverse=query.get("direction", "desc") == "desc")
            return self._page(request, repo, "issues", issues, query)
        return self._reply(request, 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})

    def _repo(self, path: str) -> tuple[Repo | None, str]:
        match = re.match(r"^/repos/([^/]+/[^/]+)(/.*)?$", path)
        if match:
            return self.repos.get(match.group(1)), match.group(2) or ""
        match = re.match(r"^/repositories/(\d+)(/.*)?$", path)
        if match:
            found = [r for r in self.repos.values() if r.repo_id == int(match.group(1))]
            return (found[0] if found else None), match.group(2) or ""
        return None, ""

    def _page(self, request: BaseHTTPRequestHandler, repo: Repo, what: str, entries: list[Any],
              query: dict[str, str]) -> None:
        per_page = min(int(query.get("per_page", "30")), 100)
        page = max(int(query.get("page", "1")), 1)
        last = max((len(entries) + per_page - 1) // per_page, 1)
        links = []

        def link(number: int, rel: str) -> str:
            params = {**query, "page": str(number)}
            return f'<{self.url}/repositories/{repo.repo_id}/{what}?{urlencode(params)}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = {"Link": ", ".join(links)} if links else {}
        self._reply(request, 200, entries[(page - 1) * per_page:page * per_page], headers)

    def _reply(self, request: BaseHTTPRequestHandler, status: int, body: Any,
               headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("content-type", "application/json; charset=utf-8")
        request.send_header("content-length", str(len(data)))
        request.send_header("x-github-api-version-selected", "2022-11-28")
        request.send_header("x-ratelimit-limit", str(self.quota))
        request.send_header("x-ratelimit-remaining", str(max(self.quota - self.used, 0)))
        request.send_header("x-ratelimit-used", str(self.used))
        request.send_header("x-ratelimit-reset", str(self.reset_at))
        request.send_header("x-ratelimit-resource", "core")
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)
