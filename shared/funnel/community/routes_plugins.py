"""Community API: plugins, their runs and archived events (admins), and the plugins' webhook (signed, no token)
(included by funnel.community.routes)."""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from funnel import db
from funnel.api.contract import Page, problem_response, problems
from funnel.api.deps import Admin, Cursor, Limit, page_of
from funnel.community import plugin_runs, plugins, webhooks
from funnel.community.models_plugins import (
    Plugin,
    PluginBody,
    PluginCreated,
    PluginEvent,
    PluginEventDetail,
    PluginPatchBody,
    PluginRun,
    WebhookReceipt,
)

router = APIRouter()
TAGS: list[str | Enum] = ["community"]
EventType = Annotated[str | None, Query(max_length=100)]


@router.post("/plugins", status_code=201, tags=TAGS)
def create_plugin(body: PluginBody, principal: Admin) -> PluginCreated:
    """A plugin. Its secrets are write-only (stored encrypted): a webhook secret is generated when none is given
    and shown in this answer only. Configure the source with ``webhook_url`` and that secret."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return PluginCreated.model_validate(plugins.create(
            conn, principal, key=body.key, name=body.name, kind=body.kind, enabled=body.enabled, config=body.config,
            secrets=body.secrets.model_dump(exclude_none=True) if body.secrets else None))


@router.get("/plugins", tags=TAGS)
def list_plugins(principal: Admin, limit: Limit = 50, cursor: Cursor = None,
                 kind: Literal["github", "webhook"] | None = None) -> Page[Plugin]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Plugin, plugins.list_plugins(conn, principal, kind=kind, cursor=cursor, limit=limit))


@router.get("/plugins/{plugin_id}", tags=TAGS, responses=problems(404))
def get_plugin(plugin_id: UUID, principal: Admin) -> Plugin:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Plugin.model_validate(plugins.get(conn, principal, plugin_id))


@router.patch("/plugins/{plugin_id}", tags=TAGS, responses=problems(404))
def update_plugin(plugin_id: UUID, body: PluginPatchBody, principal: Admin) -> Plugin:
    """Only the fields given change; ``config`` is replaced whole (the pull's cursors are kept); a secret given as
    null is removed."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Plugin.model_validate(plugins.update(conn, principal, plugin_id, body.model_dump(exclude_unset=True)))


@router.delete("/plugins/{plugin_id}", status_code=204, tags=TAGS, responses=problems(404))
def delete_plugin(plugin_id: UUID, principal: Admin) -> None:
    """The plugin with its runs and archived events; the activities it brought stay."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        plugins.delete(conn, principal, plugin_id)


@router.get("/plugins/{plugin_id}/runs", tags=TAGS, responses=problems(404))
def list_runs(plugin_id: UUID, principal: Admin, limit: Limit = 50, cursor: Cursor = None) -> Page[PluginRun]:
    """Cron, manual and webhook runs, newest first, with their counts."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(PluginRun, plugins.list_runs(conn, plugin_id, cursor=cursor, limit=limit))


@router.post("/plugins/{plugin_id}/runs", status_code=201, tags=TAGS,
             responses=problems(404, 409, conflict="the plugin does not pull (a webhook plugin, disabled, no "
                                                   "repositories) or a pull of it is running"))
def run_plugin(plugin_id: UUID, principal: Admin) -> PluginRun:
    """Pull now (GitHub plugins): answered when the pull ends, or after about 15 s with status `partial` (the hourly
    cron goes on from the cursor)."""
    return PluginRun.model_validate(plugin_runs.pull_now(principal, plugin_id))


@router.get("/plugins/{plugin_id}/events", tags=TAGS, responses=problems(404))
def list_events(plugin_id: UUID, principal: Admin, limit: Limit = 50, cursor: Cursor = None,
                event_type: EventType = None) -> Page[PluginEvent]:
    """The archived raw deliveries, newest first, each with a preview of its payload."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(PluginEvent, plugins.list_events(conn, plugin_id, event_type=event_type, cursor=cursor,
                                                        limit=limit))


@router.get("/plugins/{plugin_id}/events/{raw_id}", tags=TAGS, responses=problems(404))
def get_event(plugin_id: UUID, raw_id: UUID, principal: Admin) -> PluginEventDetail:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return PluginEventDetail.model_validate(plugins.get_event(conn, plugin_id, raw_id))


@router.post("/webhooks/plugins/{token}", tags=TAGS, response_model=WebhookReceipt,
             responses={202: {"model": WebhookReceipt, "description": "archived, but no activity came of it (an "
                                                                      "event type that makes none, a payload not "
                                                                      "understood, or ingesting failed)"},
                        **problems(400, 404, 409, 413, 415, 422, not_found="no such webhook",
                                   conflict="the plugin is disabled"),
                        401: problem_response(401, "the signature is missing or wrong (nothing was recorded)")})
async def plugin_webhook(token: str, request: Request) -> JSONResponse:
    """A plugin's deliveries: the path's token (GET /v1/plugins/{id} gives the URL) routes to the tenant and
    plugin, the signature authenticates. GitHub: `X-Hub-Signature-256`, `X-GitHub-Event`, `X-GitHub-Delivery`
    (idempotency). Generic: `X-Funnel-Timestamp` (unix seconds, within 5 minutes) and `X-Funnel-Signature:
    sha256=<hex HMAC-SHA256 of timestamp + "." + body>`, optionally `X-Funnel-Delivery` (idempotency), body
    `{"events": [...]}`."""
    receipt = webhooks.receive(token, dict(request.headers.items()), await request.body())
    return JSONResponse(WebhookReceipt.model_validate(receipt.body()).model_dump(mode="json"),
                        status_code=receipt.status_code)
