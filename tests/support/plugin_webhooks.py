"""Test helpers of the community plugins: create a plugin through the API, sign and post deliveries the way GitHub
and generic senders do (funnel.community.webhooks documents the headers), read GitHub payload samples, and count
what a plugin left behind."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from funnel import db

GITHUB_SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "community" / "github"


def github_sample(name: str) -> dict[str, Any]:
    """A trimmed, real-shaped GitHub webhook payload (tests/fixtures/community/github/<event>.<action>.json)."""
    return json.loads((GITHUB_SAMPLES / f"{name}.json").read_text())


def create_plugin(api: httpx.Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("key", f"p-{uuid.uuid4().hex[:10]}")
    body.setdefault("name", "A plugin")
    answer = api.post("/v1/plugins", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def github_delivery(api: httpx.Client, url: str, event: str, payload: dict[str, Any] | bytes, secret: str | None, *,
                    delivery: str | None = None, signature: str | None = None,
                    content_type: str = "application/json") -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": content_type, "User-Agent": "GitHub-Hookshot/test", "X-GitHub-Event": event,
               "X-GitHub-Delivery": delivery or str(uuid.uuid4()), "X-GitHub-Hook-ID": "500000001"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return api.post(url, content=body, headers=headers)


def generic_delivery(api: httpx.Client, url: str, body: dict[str, Any] | bytes, secret: str | None, *,
                     timestamp: int | str | None = None, delivery: str | None = None,
                     signature: str | None = None) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    headers = {"Content-Type": "application/json", "X-Funnel-Timestamp": stamp}
    if delivery:
        headers["X-Funnel-Delivery"] = delivery
    if signature is not None:
        headers["X-Funnel-Signature"] = signature
    elif secret is not None:
        headers["X-Funnel-Signature"] = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + raw,
                                                             hashlib.sha256).hexdigest()
    return api.post(url, content=raw, headers=headers)


def plugin_counts(tenant_id: str, plugin_id: str) -> dict[str, int]:
    """The plugin's archived events and runs, and the tenant's activities and accounts (through RLS)."""
    with db.tenant_transaction(tenant_id) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM plugin_events_raw WHERE plugin_id = %(p)s) AS events, "
            "(SELECT count(*) FROM plugin_runs WHERE plugin_id = %(p)s) AS runs, "
            "(SELECT count(*) FROM activities) AS activities, (SELECT count(*) FROM accounts) AS accounts",
            {"p": plugin_id}).fetchone()


def activities_of_event(tenant_id: str, raw_id: str) -> list[dict[str, Any]]:
    """The activities a delivery made, with their account, developer and resource."""
    with db.tenant_transaction(tenant_id) as conn:
        return conn.execute(
            "SELECT a.action, a.source, a.occurred_at, a.dedup_key, a.metadata, a.developer_id, acc.provider, "
            "acc.external_user_id, acc.handle, acc.email, acc.developer_id AS account_developer_id, "
            "r.category, r.external_id, r.url AS resource_url, r.title AS resource_title "
            "FROM activities a LEFT JOIN accounts acc ON acc.account_id = a.account_id "
            "LEFT JOIN resources r ON r.resource_id = a.resource_id WHERE a.source_ref = %s ORDER BY a.action",
            (f"plugin_events_raw:{raw_id}",)).fetchall()
