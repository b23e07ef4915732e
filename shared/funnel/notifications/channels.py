"""Where SLACK and WEBHOOK deliveries go: per-user channels, else the tenant's.

URLs (a Slack incoming-webhook URL is a credential) and webhook signing secrets
are stored encrypted (AES-256-GCM, bound to the tenant) and never returned.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import psycopg

from funnel.db import Connection
from funnel.notifications import store
from funnel.platform import audit, crypto
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal
from funnel.platform.ssrf import UnsafeUrlError, check_url, refused
from funnel.settings import get_settings


@dataclass(frozen=True)
class Channel:
    kind: str
    url: str
    signing_secret: str | None


def save_channel(conn: Connection, principal: Principal, kind: str, url: str, user_id: str | None) -> dict:
    """Create or replace the channel; a WEBHOOK gets a new signing secret, returned once."""
    try:
        check_url(url, get_settings().ssrf_allow_hosts)
    except UnsafeUrlError as exc:
        raise refused("url", exc) from exc
    signing_secret = f"whsec_{secrets.token_urlsafe(32)}" if kind == "WEBHOOK" else None
    tenant_id = principal.tenant_id
    try:
        with conn.transaction():  # one statement: two concurrent saves of one scope cannot collide
            row = store.upsert_channel(conn, kind, user_id, crypto.encrypt(url, tenant_id),
                                       crypto.encrypt(signing_secret, tenant_id) if signing_secret else None)
    except psycopg.errors.ForeignKeyViolation as exc:
        raise ValidationFailed.at(["body", "user_id"], "not a user of this workspace") from exc
    audit.record(conn, principal, "notification_channel.save", "notification_channel", row["id"],
                 {"kind": kind, "user_id": str(user_id) if user_id else None})
    return {**row, "signing_secret": signing_secret} if signing_secret else row


def list_channels(conn: Connection, user_id: str | None = None) -> list[dict]:
    """Every channel, or only ``user_id``'s own."""
    return store.list_channels(conn, user_id)


def delete_channel(conn: Connection, principal: Principal, channel_id: str, user_id: str | None = None) -> None:
    """Delete a channel (restricted to ``user_id``'s own when given: another's is a 404)."""
    if not store.delete_channel(conn, channel_id, user_id):
        raise NotFound("channel not found")
    audit.record(conn, principal, "notification_channel.delete", "notification_channel", channel_id)


def channel_for(conn: Connection, tenant_id: str, kind: str, user_id: str) -> Channel | None:
    row = store.active_channel(conn, kind, user_id)
    if row is None:
        return None
    secret = row["signing_secret_encrypted"]
    return Channel(kind, crypto.decrypt(row["url_encrypted"], tenant_id),
                   crypto.decrypt(secret, tenant_id) if secret else None)
