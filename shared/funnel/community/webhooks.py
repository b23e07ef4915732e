"""Plugin webhooks: the signed URL token that routes a delivery to its tenant and plugin, the signature checks
(GitHub's ``X-Hub-Signature-256``, Funnel's own ``X-Funnel-Signature`` for generic sources), and the delivery's
path: verify, archive once, turn into activities, record the run.

**The URL.** ``POST /v1/webhooks/plugins/{token}``: the token is ``<payload>.<signature>`` (base64url), the payload
``["pw", tenant_id, plugin_id]``, the signature HMAC-SHA256 (truncated to 128 bits) under a key derived from the
tracking signing key (``FUNNEL_TRACKING_SECRET_ID``) for this use only. A token Funnel did not sign is a 404 before
any database is touched, so nobody can make the API open a connection to a tenant's database by guessing ids.
The token is no secret (it sits in the sender's settings): every delivery must also be signed with the plugin's
webhook secret.

**Signatures.** A delivery whose signature is missing or wrong is a 401 and changes nothing (no archive, no run).
- GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``; ``X-GitHub-Event`` names the event,
  ``X-GitHub-Delivery`` is the idempotency key (a redelivery is recorded once and answered 200 ``duplicate``).
- Generic: ``X-Funnel-Timestamp: <unix seconds>`` and ``X-Funnel-Signature: sha256=<hex HMAC-SHA256 of
  timestamp + "." + raw body>``; a timestamp more than 5 minutes from now is refused (replay protection), and
  within the window a replay is recognised by its signature (or by ``X-Funnel-Delivery`` when the sender gives
  one) and recorded once.

**Never a 5xx for a signed delivery.** Every correctly signed payload is archived (``plugin_events_raw``); one that
is not JSON or lacks what its event type carries is answered 202 ``not_understood``; an event type that makes no
activity (``ping``, ``push``...) is answered 202 ``archived``; a failure while ingesting keeps the archive and the
run (``failed``, with the error) and is answered 202 too, so the sender does not retry what will fail again.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

from pydantic import ValidationError

from funnel import db
from funnel.community import github, plugin_runs
from funnel.community import store_plugins as store
from funnel.community.models_plugins import WebhookDeliveryIn
from funnel.db import Connection, Row
from funnel.observability import count, logger
from funnel.platform.errors import Conflict, NotFound, Unauthorized, ValidationFailed

TOKEN_KIND = "pw"
KEY_PURPOSE = b"funnel.community.plugin-webhook-url"
TIMESTAMP_HEADER = "x-funnel-timestamp"
SIGNATURE_HEADER = "x-funnel-signature"
DELIVERY_HEADER = "x-funnel-delivery"
MAX_CLOCK_SKEW_SECONDS = 300


# ---------------------------------------------------------------- the URL token

class WebhookTarget(NamedTuple):
    tenant_id: str
    plugin_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _url_key() -> bytes:
    """The tracking signing key, narrowed to this one use (a tracking token never verifies as a webhook token)."""
    from funnel.platform.secrets import get_secret
    from funnel.settings import get_settings

    value = get_secret(get_settings().tracking_secret_id)
    secret = str(value["secret"] if isinstance(value, dict) else value).encode()
    return hmac.new(secret, KEY_PURPOSE, hashlib.sha256).digest()


def _token_signature(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16])


def sign_target(tenant_id: str, plugin_id: str, key: bytes | None = None) -> str:
    payload = _b64(json.dumps([TOKEN_KIND, tenant_id, plugin_id], separators=(",", ":")).encode())
    return f"{payload}.{_token_signature(key or _url_key(), payload)}"


def verify_target(token: str, key: bytes | None = None) -> WebhookTarget:
    """The tenant and plugin a token Funnel signed names; NotFound for anything else (nothing says why)."""
    try:
        payload, signature = token.split(".", 1)
        if not hmac.compare_digest(_token_signature(key or _url_key(), payload), signature):
            raise ValueError("bad signature")
        values = json.loads(_unb64(payload))
        if not (isinstance(values, list) and len(values) == 3 and values[0] == TOKEN_KIND
                and all(isinstance(v, str) for v in values)):
            raise ValueError("not a webhook token")
        UUID(values[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotFound("no such webhook") from exc
    return WebhookTarget(values[1], values[2])


def webhook_url(base_url: str, tenant_id: str, plugin_id: str) -> str:
    return f"{base_url.rstrip('/')}/v1/webhooks/plugins/{sign_target(tenant_id, str(plugin_id))}"


# ---------------------------------------------------------------- signatures

def _hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def github_signature(secret: str, body: bytes) -> str:
    return f"sha256={_hex_hmac(secret, body)}"


def verify_github_signature(secret: str, body: bytes, header: str | None) -> None:
    if not header or not hmac.compare_digest(github_signature(secret, body).encode(), header.strip().encode()):
        raise Unauthorized("missing or wrong X-Hub-Signature-256")


def generic_signature(secret: str, timestamp: str, body: bytes) -> str:
    return f"sha256={_hex_hmac(secret, timestamp.encode() + b'.' + body)}"


def verify_generic_signature(secret: str, body: bytes, timestamp: str | None, header: str | None,
                             now: float | None = None) -> None:
    if not timestamp or not timestamp.strip().isascii() or not timestamp.strip().isdigit():
        raise Unauthorized("missing or malformed X-Funnel-Timestamp (unix seconds)")
    if abs((now if now is not None else time.time()) - int(timestamp.strip())) > MAX_CLOCK_SKEW_SECONDS:
        raise Unauthorized(f"X-Funnel-Timestamp is more than {MAX_CLOCK_SKEW_SECONDS} s from now")
    expected = generic_signature(secret, timestamp.strip(), body)
    if not header or not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise Unauthorized("missing or wrong X-Funnel-Signature")


# ---------------------------------------------------------------- deliveries

@dataclass
class Receipt:
    status: str
    status_code: int
    raw_id: UUID | None = None
    run_id: UUID | None = None
    event_type: str | None = None
    activities: int = 0
    duplicates: int = 0
    detail: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "raw_id": self.raw_id, "run_id": self.run_id, "event_type": self.event_type,
                "activities": self.activities, "duplicates": self.duplicates, "detail": self.detail}


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _archived_payload(body: bytes) -> tuple[Any, bool]:
    """(what to archive, whether it parsed as JSON): a body that is not JSON text, or JSON that PostgreSQL's jsonb
    cannot hold (NaN, Infinity, a NUL character; only a body sent as text/plain gets this far with them), is kept
    as base64."""
    try:
        if b"\\u0000" in body:
            raise ValueError("a NUL character")
        return json.loads(body, parse_constant=_not_json_constant), True
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {"body_base64": base64.b64encode(body).decode()}, False


def receive(token: str, headers: dict[str, str], body: bytes) -> Receipt:
    """One webhook delivery (``headers`` with lower-case names), from the URL token to the receipt."""
    target = verify_target(token)
    with db.tenant_transaction(target.tenant_id) as conn:
        plugin = store.plugin(conn, target.plugin_id)
        if plugin is None:
            raise NotFound("no such webhook")
        if not plugin["enabled"]:
            raise Conflict("the plugin is disabled: enable it to accept deliveries")
        secret = plugin_runs.secrets_of(plugin, target.tenant_id).get("webhook_secret")
        if not secret:
            raise Unauthorized("the plugin has no webhook secret: deliveries cannot be verified")
        if plugin["kind"] == "github":
            verify_github_signature(secret, body, headers.get("x-hub-signature-256"))
            event_type = (headers.get("x-github-event") or "").strip()[:100] or None
            delivery = (headers.get("x-github-delivery") or "").strip()[:200] or None
            dedup_key = f"github:{plugin['plugin_id']}:{delivery or hashlib.sha256(body).hexdigest()}"
        else:
            verify_generic_signature(secret, body, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER))
            event_type = "events"
            delivery = (headers.get(DELIVERY_HEADER) or "").strip()[:200] or None
            dedup_key = (f"webhook:{plugin['plugin_id']}:delivery:{delivery}" if delivery else
                         f"webhook:{plugin['plugin_id']}:signature:{headers[SIGNATURE_HEADER].strip()}")
        payload, parsed = _archived_payload(body)
        raw_id = store.archive_event(conn, plugin["plugin_id"], event_type, payload, dedup_key)
        if raw_id is None:
            first = store.archived_event_by_key(conn, dedup_key)
            return Receipt("duplicate", 200, raw_id=first["raw_id"] if first else None,
                           run_id=first["run_id"] if first else None, event_type=event_type,
                           detail="this delivery was recorded before; nothing changed")
        run = store.insert_run(conn, plugin["plugin_id"], "webhook")
        store.attach_run(conn, raw_id, run["run_id"])
        receipt = _ingest(conn, plugin, target.tenant_id, event_type, delivery or str(raw_id), payload, parsed,
                          raw_id)
        receipt.raw_id, receipt.run_id, receipt.event_type = raw_id, run["run_id"], event_type
        status = {"processed": "success", "archived": "success", "not_understood": "partial"}.get(receipt.status,
                                                                                                   "failed")
        store.finish_run(conn, run["run_id"], status, {
            "event_type": event_type, "delivery": delivery, "outcome": receipt.status, "activities": receipt.activities,
            "duplicates": receipt.duplicates, **({"detail": receipt.detail} if receipt.detail else {}),
            **receipt.result})
    count("PluginDeliveries", tenant_id=target.tenant_id)
    return receipt


def _ingest(conn: Connection, plugin: Row, tenant_id: str, event_type: str | None, delivery: str, payload: Any,
            parsed: bool, raw_id: UUID) -> Receipt:
    """Turn an archived delivery into activities inside a savepoint: whatever fails there leaves the archive and
    the run, and answers 202 (the sender would only send the same thing again)."""
    if not parsed:
        return Receipt("not_understood", 202, detail="not understood: the body is not JSON; archived as it came")
    try:
        if plugin["kind"] == "github":
            mapped = github.delivery_items(event_type or "", delivery, payload)
        else:
            mapped = _generic_items(plugin, delivery, payload)
    except github.NotUnderstood as exc:
        return Receipt("not_understood", 202, detail=str(exc))
    except ValidationFailed as exc:
        return Receipt("not_understood", 202, detail=exc.detail, result={"errors": exc.extra.get("errors", [])})
    for item in mapped.items:
        item["source_ref"] = f"plugin_events_raw:{raw_id}"
    try:
        with conn.transaction():
            outcome = plugin_runs.ingest(conn, plugin, tenant_id, mapped.items, mapped.accounts)
    except ValidationFailed as exc:
        return Receipt("not_understood", 202, detail=f"not understood: {exc.detail}",
                       result={"errors": exc.extra.get("errors", [])})
    except Exception as exc:  # archived and recorded: never a 5xx for a signed delivery
        logger.exception("a plugin delivery was archived but could not be ingested")
        return Receipt("failed", 202, detail=f"archived; ingesting failed ({type(exc).__name__})")
    if not mapped.items:
        return Receipt("archived", 202, detail=mapped.note or "archived: this event makes no activity")
    return Receipt("processed", 200, activities=outcome["inserted"], duplicates=outcome["duplicates"])


def _generic_items(plugin: Row, delivery: str, payload: Any) -> github.Mapped:
    """A generic delivery's events as activity items; ValidationFailed (naming each field) when it is not the
    documented shape."""
    try:
        body = WebhookDeliveryIn.model_validate(payload)
    except ValidationError as exc:
        errors = [{"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
                  for error in exc.errors(include_url=False, include_context=False, include_input=False)]
        first = errors[0]
        raise ValidationFailed(f"not understood: {'.'.join(map(str, first['loc']))}: {first['msg']}",
                               errors=errors[:100]) from exc
    source = (plugin["config"] or {}).get("source") or plugin["key"]
    items = []
    for index, event in enumerate(body.events):
        item = event.model_dump(exclude_none=True)
        item["source"] = source
        item["dedup_key"] = event.dedup_key or f"webhook:{plugin['plugin_id']}:{delivery}:{index}"
        items.append(item)
    return github.Mapped(items=items)
