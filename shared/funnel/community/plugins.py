"""Plugins per tenant: their configuration (validated per kind), their secrets (encrypted with the tenant-bound
data key, never answered: only whether each is set and its last characters), their webhook URL, their runs and
archived raw events. The pull runs are ``funnel.community.plugin_runs``'.
"""
from __future__ import annotations

import json
import secrets as random_secrets
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from funnel.community import plugin_runs, webhooks
from funnel.community import store_plugins as store
from funnel.community.models_plugins import GithubConfig, WebhookConfig
from funnel.community.plugin_runs import STATE_KEY
from funnel.db import Connection, Row
from funnel.platform import audit, crypto
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.settings import get_settings

CONFIG_MODELS: dict[str, type[BaseModel]] = {"github": GithubConfig, "webhook": WebhookConfig}
SECRET_NAMES = {"github": ("webhook_secret", "token"), "webhook": ("webhook_secret",)}
HINT_MIN_LENGTH = 16


# ---------------------------------------------------------------- shapes

def _config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    try:
        return CONFIG_MODELS[kind].model_validate(config).model_dump()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise ValidationFailed.at(["body", "config", *error["loc"]], error["msg"], error["type"]) from exc


def _hint(value: str) -> dict[str, Any]:
    return {"set": True, "hint": f"…{value[-4:]}" if len(value) >= HINT_MIN_LENGTH else "****"}


def answer(row: Row, tenant_id: str) -> dict[str, Any]:
    """A plugin as the API answers it: secrets only as hints, the pull state apart from the configuration."""
    config = dict(row["config"] or {})
    state = config.pop(STATE_KEY, None) or {}
    found = plugin_runs.secrets_of(row, tenant_id)
    return {"plugin_id": row["plugin_id"], "key": row["key"], "name": row["name"], "kind": row["kind"],
            "enabled": row["enabled"], "config": config, "state": state,
            "secrets": {name: _hint(value) for name, value in found.items() if value},
            "has_secret": bool(found.get("webhook_secret")),
            "webhook_url": webhooks.webhook_url(get_settings().public_base_url, tenant_id, str(row["plugin_id"])),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _sealed(values: dict[str, str], tenant_id: str) -> str | None:
    kept = {name: value for name, value in values.items() if value}
    return crypto.encrypt(json.dumps(kept), tenant_id) if kept else None


def _check_secret_names(kind: str, names: list[str]) -> None:
    for name in names:
        if name not in SECRET_NAMES[kind]:
            raise ValidationFailed.at(["body", "secrets", name], f"a {kind} plugin has no secret {name!r}")


def _check_key(conn: Connection, key: str, other_than: UUID | None = None) -> None:
    if store.key_taken(conn, key, other_than):
        raise ValidationFailed.at(["body", "key"], "another plugin of this tenant has this key", "key_taken")


# ---------------------------------------------------------------- CRUD

def create(conn: Connection, principal: Principal, *, key: str, name: str, kind: str, enabled: bool,
           config: dict[str, Any], secrets: dict[str, str | None] | None) -> dict[str, Any]:
    _check_key(conn, key)
    given = {k: v for k, v in (secrets or {}).items() if v}
    _check_secret_names(kind, list(given))
    generated = None
    if not given.get("webhook_secret"):
        generated = given["webhook_secret"] = random_secrets.token_urlsafe(32)
    row = store.insert_plugin(conn, key=key, name=name, kind=kind, enabled=enabled, config=_config(kind, config),
                              secrets_encrypted=_sealed(given, principal.tenant_id))
    audit.record(conn, principal, "plugin.create", "plugin", row["plugin_id"],
                 {"key": key, "kind": kind, "secrets": sorted(given)})
    return {**answer(row, principal.tenant_id), "webhook_secret": generated}


def get(conn: Connection, principal: Principal, plugin_id: UUID) -> dict[str, Any]:
    return answer(_plugin(conn, plugin_id), principal.tenant_id)


def list_plugins(conn: Connection, principal: Principal, *, kind: str | None, cursor: str | None,
                 limit: int) -> Page:
    page = store.plugins_page(conn, kind=kind, cursor=cursor, limit=limit)
    return Page([answer(row, principal.tenant_id) for row in page.items], page.next_cursor)


def update(conn: Connection, principal: Principal, plugin_id: UUID, changes: dict[str, Any]) -> dict[str, Any]:
    row = _plugin(conn, plugin_id, for_update=True)
    fields: dict[str, Any] = {k: v for k, v in changes.items() if k in ("key", "name", "enabled") and v is not None}
    if "key" in fields and fields["key"] != row["key"]:
        _check_key(conn, fields["key"], plugin_id)
    if changes.get("config") is not None:
        state = (row["config"] or {}).get(STATE_KEY)
        fields["config"] = {**_config(row["kind"], changes["config"]), **({STATE_KEY: state} if state else {})}
    secret_changes = changes.get("secrets") or {}
    if secret_changes:
        _check_secret_names(row["kind"], list(secret_changes))
        for name, value in secret_changes.items():
            if value is not None and name == "webhook_secret" and len(value) < HINT_MIN_LENGTH:
                raise ValidationFailed.at(["body", "secrets", name], f"at least {HINT_MIN_LENGTH} characters")
        current = plugin_runs.secrets_of(row, principal.tenant_id)
        fields["secrets_encrypted"] = _sealed({**current, **secret_changes}, principal.tenant_id)
    if not fields:
        return answer(row, principal.tenant_id)
    updated = store.update_plugin(conn, plugin_id, fields)
    audit.record(conn, principal, "plugin.update", "plugin", plugin_id,
                 {"fields": sorted(k for k in fields if k != "secrets_encrypted"),
                  "secrets": {name: "set" if value else "removed" for name, value in secret_changes.items()}})
    return answer(updated, principal.tenant_id)


def delete(conn: Connection, principal: Principal, plugin_id: UUID) -> None:
    row = _plugin(conn, plugin_id)
    store.delete_plugin(conn, plugin_id)
    audit.record(conn, principal, "plugin.delete", "plugin", plugin_id, {"key": row["key"], "kind": row["kind"]})


def _plugin(conn: Connection, plugin_id: UUID, *, for_update: bool = False) -> Row:
    row = store.plugin(conn, plugin_id, for_update=for_update)
    if row is None:
        raise NotFound("plugin not found")
    return row


# ---------------------------------------------------------------- runs and events

def _without_keyset(page: Page) -> Page:
    return Page([{k: v for k, v in row.items() if k not in ("id", "created_at")} for row in page.items],
                page.next_cursor)


def list_runs(conn: Connection, plugin_id: UUID, *, cursor: str | None, limit: int) -> Page:
    _plugin(conn, plugin_id)
    return _without_keyset(store.runs_page(conn, plugin_id, cursor=cursor, limit=limit))


def list_events(conn: Connection, plugin_id: UUID, *, event_type: str | None, cursor: str | None,
                limit: int) -> Page:
    _plugin(conn, plugin_id)
    return _without_keyset(store.events_page(conn, plugin_id, event_type=event_type, cursor=cursor, limit=limit))


def get_event(conn: Connection, plugin_id: UUID, raw_id: UUID) -> Row:
    row = store.event(conn, plugin_id, raw_id)
    if row is None:
        raise NotFound("event not found")
    return row
