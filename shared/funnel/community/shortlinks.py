"""Shortlinks: create, list, change and delete them (the API) and the redirect that ``GET /s/{key}`` answers (the
tracking function, functions/email_tracking); their QR codes are ``shortlink_qr``. The decisions are in
README-shortlinks.md.

Rules:
- a key is random (8 base62 characters from ``secrets``: 62^8 ~ 2.2e14, not guessable) or chosen
  (``[A-Za-z0-9_-]{3,64}``); unique per tenant (409) and claimed in the control DB per host (409 when another
  tenant holds it on the same domain);
- the target is http(s) with a public host: a literal private, loopback or link-local address, ``localhost``
  and single-label names are refused (422); the visitor's browser fetches it, not Funnel, so no DNS is resolved;
- UTM attributes are merged into the target's query, never overriding a parameter the target already has;
- machine traffic (HEAD, prefetch, scanners: ``funnel.platform.traffic``) is redirected but records no activity;
- a tracked click takes one of the plan's monthly ``shortlink_clicks`` (``funnel.billing.limits``); past the limit
  the visitor is still redirected (a link on a printed page keeps working) and nothing is recorded;
- a click (or a QR scan: ``?s=qr``) is one activity (source ``shortlink``) through ``funnel.community.activities``,
  which withholds it for a developer without analytics consent; an anon id already seen with a developer gives
  the click that developer, and the anon id's earlier anonymous clicks too.
"""
from __future__ import annotations

import ipaddress
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from funnel import db
from funnel.billing import limits
from funnel.community import activities
from funnel.community import store_shortlinks as store
from funnel.db import Connection, Row
from funnel.observability import count
from funnel.platform import audit, ssrf
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.normalize import normalize_url
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.platform.traffic import request_reason
from funnel.settings import get_settings

KEY_ALPHABET = string.ascii_letters + string.digits
RANDOM_KEY_LENGTH = 8
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{3,64}$")
UTM_NAMES = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
SCAN_PARAMETER, SCAN_VALUE = "s", "qr"
ANON_COOKIE = "funnel_anon"
ANON_COOKIE_SECONDS = 365 * 24 * 3600
ANON_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_KEY_ATTEMPTS = 5


# ---------------------------------------------------------------- pure rules

def random_key() -> str:
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(RANDOM_KEY_LENGTH))


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise ValidationFailed.at(["body", "key"], "3 to 64 of A-Z, a-z, 0-9, '_' and '-'")
    return key


def check_target(raw: str) -> str:
    """The target URL, normalised, when it is http(s) and its host may be public; else a 422 on body.target_url."""
    url = normalize_url(raw, ["body", "target_url"])
    try:
        _, host, _ = ssrf.parse_url(url)
    except ssrf.UnsafeUrlError as exc:
        raise ssrf.refused("target_url", exc) from exc
    bare = host.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])
        literal = True
    except ValueError:
        literal = False
    if literal and not ssrf.is_public_address(bare):
        raise ssrf.refused("target_url", ssrf.UnsafeUrlError(f"the host {host!r} is not a public address"))
    if not literal and ("." not in bare or bare == "localhost" or bare.endswith((".localhost", ".local",
                                                                                 ".internal", ".localdomain"))):
        raise ssrf.refused("target_url", ssrf.UnsafeUrlError(f"the host {host!r} is not a public name"))
    return url


def merge_utm(target_url: str, utm: dict[str, str]) -> str:
    """``target_url`` with the UTM parameters it does not already carry appended (the target's own win)."""
    parts = urlsplit(target_url)
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    extra = [(name, utm[name]) for name in UTM_NAMES if utm.get(name) and name not in present]
    if not extra:
        return target_url
    query = f"{parts.query}&{urlencode(extra)}" if parts.query else urlencode(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def short_url(host: str, key: str, *, scan: bool = False) -> str:
    """The link's public URL: on its own domain (https) or on the product's public base URL ('' host)."""
    base = f"https://{host}" if host else get_settings().public_base_url.rstrip("/")
    return f"{base}/s/{key}" + (f"?{SCAN_PARAMETER}={SCAN_VALUE}" if scan else "")


def _out(row: Row) -> dict[str, Any]:
    attributes = dict(row["attributes"] or {})
    out = {k: v for k, v in row.items() if k not in ("attributes", "id")}  # "id": the keyset page's own column
    return {**out, "utm": {k: v for k, v in attributes.items() if k in UTM_NAMES},
            "short_url": short_url(row["host"], row["key"]), "qr_url": short_url(row["host"], row["key"], scan=True)}


# ---------------------------------------------------------------- the API

def create(conn: Connection, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    target = check_target(body["target_url"])
    chosen = check_key(body["key"]) if body.get("key") else None
    host = (store.shortlink_domain(conn) or "").lower()
    if chosen and store.key_taken(conn, chosen):
        raise Conflict(f"the key {chosen!r} is taken")
    for _ in range(1 if chosen else MAX_KEY_ATTEMPTS):
        key = chosen or random_key()
        if not chosen and store.key_taken(conn, key):
            continue
        # the tenant's row first: a reference to another tenant's campaign or resource fails here (422), before
        # anything is claimed in the control DB
        row = store.insert_shortlink(conn, key=key, host=host, target_url=target,
                                     campaign_id=body.get("campaign_id"), resource_id=body.get("resource_id"),
                                     attributes={k: v for k, v in (body.get("utm") or {}).items() if v},
                                     enabled=body.get("enabled", True),
                                     redirect_status=body.get("redirect_status", 302))
        with db.control_transaction() as control:
            claimed = store.claim_route(control, host, key, principal.tenant_id, row["shortlink_id"])
        if claimed:
            audit.record(conn, principal, "shortlink.create", "shortlink", row["shortlink_id"],
                         {"key": key, "host": host})
            return _out(row)
        if chosen:
            raise Conflict(f"the key {chosen!r} is taken on this domain")
        store.delete_shortlink(conn, row["shortlink_id"])
    raise Conflict("no free random key was found; try again")


def get(conn: Connection, shortlink_id: UUID) -> dict[str, Any]:
    row = store.shortlink(conn, shortlink_id)
    if row is None:
        raise NotFound("shortlink not found")
    return _out(row)


def list_shortlinks(conn: Connection, *, campaign_id: UUID | None, enabled: bool | None, cursor: str | None,
                    limit: int) -> Page:
    page = store.shortlinks_page(conn, campaign_id=campaign_id, enabled=enabled, cursor=cursor, limit=limit)
    page.items = [_out(row) for row in page.items]
    return page


def update(conn: Connection, principal: Principal, shortlink_id: UUID, changes: dict[str, Any]) -> dict[str, Any]:
    if store.shortlink(conn, shortlink_id, for_update=True) is None:
        raise NotFound("shortlink not found")
    fields = {k: v for k, v in changes.items() if k in ("campaign_id", "resource_id", "enabled", "redirect_status")}
    if "target_url" in changes:
        fields["target_url"] = check_target(changes["target_url"])
    if "utm" in changes:
        fields["attributes"] = {k: v for k, v in (changes["utm"] or {}).items() if v}
    if not fields:
        return get(conn, shortlink_id)
    row = store.update_shortlink(conn, shortlink_id, fields)
    audit.record(conn, principal, "shortlink.update", "shortlink", shortlink_id, {"fields": sorted(fields)})
    return _out(row)


def delete(conn: Connection, principal: Principal, shortlink_id: UUID) -> None:
    gone = store.delete_shortlink(conn, shortlink_id)
    if gone is None:
        raise NotFound("shortlink not found")
    with db.control_transaction() as control:
        store.release_route(control, gone["host"], gone["key"], principal.tenant_id)
    audit.record(conn, principal, "shortlink.delete", "shortlink", shortlink_id, {"key": gone["key"]})


# ---------------------------------------------------------------- the redirect

@dataclass
class Visit:
    """What the tracking function knows of a request for ``/s/{key}``."""
    host: str
    key: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    query: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None


@dataclass
class Answer:
    status: int  # 301/302, or 404
    location: str | None = None
    set_anon_id: str | None = None  # a new anonymous id to set as the cookie
    recorded: str | None = None  # "inserted", "duplicate", "skipped_consent", "machine:<reason>", "over_plan_limit"


def anon_cookie(anon_id: str) -> str:
    return (f"{ANON_COOKIE}={anon_id}; Max-Age={ANON_COOKIE_SECONDS}; Path=/; Secure; HttpOnly; SameSite=Lax")


def follow(visit: Visit) -> Answer:
    """Resolve the visit to its link and record it: one control-DB read for the tenant, one tenant transaction."""
    if not KEY_PATTERN.match(visit.key):
        return Answer(404)
    host = visit.host.split(":", 1)[0].rstrip(".").lower()
    with db.control_transaction() as control:
        claim = store.route(control, host, visit.key)
    if claim is None:
        return Answer(404)
    tenant_id = claim["tenant_id"]
    try:
        db.directory.get(tenant_id)
    except NotFound:  # a deleted tenant's links are gone: the same 404 as a key that never existed
        return Answer(404)
    with db.tenant_transaction(tenant_id) as conn:
        link = store.live_shortlink(conn, claim["shortlink_id"])
        if link is None:
            return Answer(404)
        location = merge_utm(link["target_url"], dict(link["attributes"] or {}))
        reason = request_reason(visit.headers.get("user-agent"), visit.method, visit.headers)
        if reason:
            count("ShortlinkMachineRequests", tenant_id=tenant_id)
            return Answer(link["redirect_status"], location, recorded=f"machine:{reason}")
        known = visit.cookies.get(ANON_COOKIE, "")
        anon_id = known if ANON_ID_PATTERN.match(known) else secrets.token_urlsafe(18)
        if limits.take(conn, tenant_id, "shortlink_clicks") is not None:  # the visitor still gets there, untracked
            return Answer(link["redirect_status"], location, recorded="over_plan_limit")
        outcome = _record(conn, tenant_id, link, visit, anon_id)
    return Answer(link["redirect_status"], location, set_anon_id=None if anon_id == known else anon_id,
                  recorded=outcome)


def _record(conn: Connection, tenant_id: str, link: Row, visit: Visit, anon_id: str) -> str:
    scan = visit.query.get(SCAN_PARAMETER) == SCAN_VALUE
    attributes = dict(link["attributes"] or {})
    metadata = {"shortlink_id": str(link["shortlink_id"]), "key": link["key"],
                "campaign_id": str(link["campaign_id"]) if link["campaign_id"] else None,
                "utm": {k: v for k, v in attributes.items() if k in UTM_NAMES},
                "user_agent": (visit.headers.get("user-agent") or "")[:500],
                "referrer": (visit.headers.get("referer") or "")[:1000] or None}
    developer_id = store.developer_of_anon(conn, anon_id)
    item: dict[str, Any] = {"anon_id": anon_id, "developer_id": developer_id,
                            "action": "scan" if scan else "click", "source": "shortlink",
                            "occurred_at": datetime.now(UTC), "resource_id": link["resource_id"],
                            "metadata": metadata, "source_ref": None,
                            "dedup_key": f"shortlink:{visit.request_id}" if visit.request_id else None}
    actor = Principal(tenant_id=tenant_id, user_id=f"shortlink:{link['shortlink_id']}", role="member")
    status = str(activities.ingest(conn, actor, [item], loc=["body"])["items"][0]["status"])
    if developer_id is not None and status == "inserted":  # consented: the visitor's anonymous clicks are theirs
        store.attribute_anonymous_clicks(conn, anon_id, developer_id)
    count("ShortlinkScans" if scan else "ShortlinkClicks", tenant_id=tenant_id)
    return status
