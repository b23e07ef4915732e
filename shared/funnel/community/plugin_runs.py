"""Running plugins: what a webhook delivery and a pull share (the plugin's decrypted secrets, its items written as
activities under the plugin's name) and the pull runs (cron or manual) of GitHub plugins. Nothing here needs the
HTTP API's packages: CommunityPluginCronFunction imports it without them.

A pull is a ``plugin_runs`` row of its own transaction (committed first, so the run shows while it works), then
one transaction per page (the page's activities and the cursor, together: a run stopped anywhere resumes from what
it committed), then the run's outcome. One pull per plugin at a time: a manual trigger while one runs is a 409,
and the cron skips the plugin.
"""
from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

from funnel import db
from funnel.community import activities, github, identity
from funnel.community import store_plugins as store
from funnel.community.identity import AccountIn
from funnel.db import Connection, Row
from funnel.observability import count, logger
from funnel.platform import audit, crypto
from funnel.platform.errors import Conflict, NotFound
from funnel.platform.principal import Principal
from funnel.platform.ssrf import http_client
from funnel.settings import get_settings

STATE_KEY = "pull_state"  # the pull's cursors, inside the plugin's config (kept apart in answers and PATCHes)
API_PULL_SECONDS = 15.0  # with a last request of 10 s, a manual pull answers within API Gateway's 30 s


# ---------------------------------------------------------------- what webhooks and pulls share

def secrets_of(plugin: Row, tenant_id: str) -> dict[str, str]:
    """The plugin's decrypted secrets (``webhook_secret``, ``token``); never answered by the API."""
    if not plugin["secrets_encrypted"]:
        return {}
    return json.loads(crypto.decrypt(plugin["secrets_encrypted"], tenant_id))


def plugin_actor(tenant_id: str, plugin_id: Any) -> Principal:
    """Who the audit log names for what a plugin ingests (no user is behind a webhook or a cron pull)."""
    return Principal(tenant_id=tenant_id, user_id=f"plugin:{plugin_id}", role="member")


def ingest(conn: Connection, plugin: Row, tenant_id: str, items: list[dict[str, Any]],
           accounts: list[AccountIn] | None = None) -> dict[str, Any]:
    """Write a plugin's activity items through the activities service (their accounts resolved there, in one
    call), and resolve ``accounts`` that come without an activity (a pusher's commit e-mails)."""
    if accounts:
        identity.resolve_accounts(conn, accounts)
    if not items:
        return {"inserted": 0, "duplicates": 0}
    outcome = activities.ingest(conn, plugin_actor(tenant_id, plugin["plugin_id"]), items, loc=["body", "events"])
    return {"inserted": outcome["inserted"], "duplicates": outcome["duplicates"]}


# ---------------------------------------------------------------- pulls

def start_pull(tenant_id: str, plugin_id: UUID | str, trigger: str, actor: Principal | None = None) -> Row | None:
    """The new 'running' run of a pull (committed), or None when the plugin has nothing to pull or a pull of it is
    running (Conflict instead when a person asked: ``actor``)."""
    with db.tenant_transaction(tenant_id) as conn:
        row = store.plugin(conn, plugin_id, for_update=True)
        if row is None:
            raise NotFound("plugin not found")
        why = _cannot_pull(row)
        store.fail_stale_pulls(conn, plugin_id)
        if why is None and store.pull_running(conn, plugin_id):
            why = "a pull of this plugin is running; wait for it to finish"
        if why is not None:
            if actor is not None:
                raise Conflict(why)
            return None
        run = store.insert_run(conn, plugin_id, trigger)
        if actor is not None:
            audit.record(conn, actor, "plugin.run", "plugin", plugin_id, {"run_id": str(run["run_id"])})
    return run


def _cannot_pull(row: Row) -> str | None:
    if row["kind"] != "github":
        return "only GitHub plugins pull; a webhook plugin receives"
    if not row["enabled"]:
        return "the plugin is disabled"
    if not (row["config"] or {}).get("repositories"):
        return "the plugin has no repositories to pull (config.repositories)"
    return None


def run_pull(tenant_id: str, run: Row, seconds: float) -> Row:
    """Carry out a started pull for at most ``seconds`` and record its outcome on the run."""
    plugin_id = run["plugin_id"]
    with db.tenant_transaction(tenant_id) as conn:
        row = store.plugin(conn, plugin_id)
        if row is None:
            raise NotFound("plugin not found")
        token = secrets_of(row, tenant_id).get("token")
    config = dict(row["config"] or {})
    state = config.pop(STATE_KEY, None) or {}

    def write(items: list[dict[str, Any]]) -> dict[str, Any]:
        for item in items:
            item["source_ref"] = f"plugin_runs:{run['run_id']}"
        with db.tenant_transaction(tenant_id) as conn:
            return ingest(conn, row, tenant_id, items)

    def save_state(new_state: dict[str, Any]) -> None:
        with db.tenant_transaction(tenant_id) as conn:
            store.set_pull_state(conn, plugin_id, new_state)

    try:
        with http_client(timeout=github.REQUEST_TIMEOUT_SECONDS) as client:
            api = github.GithubApi(client, get_settings().github_api_url, token)
            outcome = github.pull(api, config, state, write, save_state, time.monotonic() + seconds)
        status, result = outcome.status, outcome.result
    except Exception as exc:  # the run records why; the cron goes on with the next plugin
        logger.exception("a plugin pull failed")
        status, result = "failed", {"error": f"{type(exc).__name__}: {exc}"[:500]}
    with db.tenant_transaction(tenant_id) as conn:
        finished = store.finish_run(conn, run["run_id"], status, result)
    count("PluginPulls", tenant_id=tenant_id)
    return finished


def pull_now(principal: Principal, plugin_id: UUID) -> Row:
    """POST /v1/plugins/{id}/runs: a manual pull, answered when it ends (or when its time budget is used)."""
    run = start_pull(principal.tenant_id, plugin_id, "manual", actor=principal)
    assert run is not None  # a person's request raises instead
    return run_pull(principal.tenant_id, run, API_PULL_SECONDS)


def pull_due(tenant_id: str, deadline: float) -> dict[str, int]:
    """The cron's work in one tenant: every enabled GitHub plugin with repositories, the one pulled longest ago
    first, until ``deadline`` (``time.monotonic()``)."""
    with db.tenant_transaction(tenant_id) as conn:
        due = [row["plugin_id"] for row in store.pull_plugins(conn)]
    done = {"runs": 0, "skipped": 0}
    for plugin_id in due:
        left = deadline - time.monotonic()
        if left <= 0:
            done["skipped"] += 1
            continue
        run = start_pull(tenant_id, plugin_id, "cron")
        if run is None:
            done["skipped"] += 1
            continue
        run_pull(tenant_id, run, left)
        done["runs"] += 1
    return done
