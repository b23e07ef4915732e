"""A workspace's settings (``system_settings``): what ``GET/PATCH /v1/settings`` shows and changes.

- ``base_url``: an http(s) URL passing the SSRF guard (``ssrf.check_url``), as every stored URL.
- ``send_window``: the default send window, validated by the one send-window model (``send_window.SendWindow``,
  outreach tasks' own): days 0-6, HH:MM, an IANA time zone.
- ``shortlink_domain``: a host name (labels of letters, digits and hyphens, a dot, not an address, not a local
  name), lowercased; community's shortlinks read it (``funnel.community.store_shortlinks.shortlink_domain``). It
  may be neither the product's own host nor a host on which another workspace holds shortlinks: the redirect
  prefers a host's own claims over the product domain's, so either would let this workspace answer the other's
  links.
- ``ai``: the workspace's model per step, in ``ai_settings`` as ``PUT /v1/llm/step-defaults/{step}`` writes it,
  each choice checked by ``llm_registry.with_step_model`` (a known step, an active model).
- ``smtp``: host (SSRF-checked like SMTP profiles' hosts), port, username, TLS mode and a write-only password,
  stored AES-GCM-encrypted bound to the tenant (``crypto``), shown only as ``password_set``. A PATCH without
  ``password`` keeps the stored one only while ``host`` and ``username`` stay the same: otherwise an admin could
  point the stored password at a server of their own.

A PATCH is validated whole before anything is written (a bad field is a 422 naming it, nothing changes), then
written in one statement and audited (``settings.update`` with the names of the changed fields, never values).
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from funnel import db
from funnel.db import Row
from funnel.platform import audit, crypto, llm_registry, llm_steps, store_settings
from funnel.platform.errors import ValidationFailed
from funnel.platform.llm import OfflineLlmNotAllowed
from funnel.platform.models_settings import SettingsPatch, SmtpDefaultsPatch
from funnel.platform.principal import Principal
from funnel.platform.ssrf import UnsafeUrlError, check_host, check_url, refused
from funnel.settings import get_settings

HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")


def current(principal: Principal) -> dict[str, Any]:
    """The workspace's settings as the API shows them (secrets left out)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return _shown(store_settings.settings_row(conn))


def update(principal: Principal, patch: SettingsPatch) -> dict[str, Any]:
    """Apply the fields ``patch`` sets (null clears one); the settings as they are after."""
    sent = patch.model_fields_set
    with db.tenant_transaction(principal.tenant_id) as conn:
        row = store_settings.settings_row(conn, for_update=True) or {}
        base_url, send_window = row.get("base_url"), row.get("send_window")
        shortlink_domain, smtp_settings = row.get("shortlink_domain"), row.get("smtp_settings")
        ai_settings: dict[str, Any] = dict(row.get("ai_settings") or {})
        changed: list[str] = []
        if "base_url" in sent:
            base_url = _checked_base_url(patch.base_url)
            changed.append("base_url")
        if "send_window" in sent:
            send_window = patch.send_window.model_dump() if patch.send_window else None
            changed.append("send_window")
        if "shortlink_domain" in sent:
            shortlink_domain = _checked_shortlink_domain(patch.shortlink_domain, principal.tenant_id)
            changed.append("shortlink_domain")
        if "ai" in sent:
            ai_settings, steps = _with_step_models(ai_settings, patch)
            changed += [f"ai.step_models.{step}" for step in steps] or ["ai"]
        if "smtp" in sent:
            smtp_settings, smtp_changed = _smtp_settings(patch.smtp, smtp_settings, principal.tenant_id)
            changed += smtp_changed
        if not changed:
            return _shown(row or None)
        saved = store_settings.save_settings(conn, base_url=base_url, send_window=send_window,
                                             shortlink_domain=shortlink_domain, ai_settings=ai_settings,
                                             smtp_settings=smtp_settings)
        audit.record(conn, principal, "settings.update", "system_settings", principal.tenant_id,
                     {"fields": changed})
    return _shown(saved)


def _shown(row: Row | None) -> dict[str, Any]:
    row = row or {}
    smtp = row.get("smtp_settings")
    return {
        "base_url": row.get("base_url"), "send_window": row.get("send_window"),
        "shortlink_domain": row.get("shortlink_domain"),
        "ai": {"step_models": dict((row.get("ai_settings") or {}).get("step_models") or {})},
        "smtp": None if not smtp else {"host": smtp["host"], "port": smtp["port"], "username": smtp.get("username"),
                                       "tls": smtp["tls"], "password_set": bool(smtp.get("password_encrypted"))},
        "updated_at": row.get("updated_at"),
    }


def _checked_base_url(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        return check_url(url, get_settings().ssrf_allow_hosts)
    except UnsafeUrlError as exc:
        raise refused("base_url", exc) from exc


def _checked_shortlink_domain(domain: str | None, tenant_id: str) -> str | None:
    if domain is None:
        return None
    loc: list[str | int] = ["body", "shortlink_domain"]
    host = domain.strip().lower().rstrip(".")
    try:
        ipaddress.ip_address(host.strip("[]"))
        raise ValidationFailed.at(loc, "a host name, not an address")
    except ValueError:
        pass
    labels = host.split(".")
    if (len(host) > 253 or len(labels) < 2 or not all(HOST_LABEL.match(label) for label in labels)
            or labels[-1].isdigit()):
        raise ValidationFailed.at(loc, "not a host name (like go.example.com: letters, digits, hyphens and dots; "
                                       "no scheme, port or path)")
    if host == "localhost" or host.endswith(LOCAL_SUFFIXES):
        raise ValidationFailed.at(loc, "a local name cannot serve public links")
    if host == (urlsplit(get_settings().public_base_url).hostname or "").lower():
        raise ValidationFailed.at(loc, "this is the product's own domain, where every workspace's links are; leave "
                                       "it unset (null) to use it")
    with db.control_transaction() as control:
        taken = store_settings.shortlink_host_of_another_tenant(control, host, tenant_id)
    if taken:
        raise ValidationFailed.at(loc, "another workspace has shortlinks on this domain")
    return host


def _with_step_models(ai_settings: dict[str, Any], patch: SettingsPatch) -> tuple[dict[str, Any], list[str]]:
    """``ai_settings`` with the patch's step choices (each checked as ``PUT /v1/llm/step-defaults`` checks it);
    ``ai: null`` drops every choice."""
    if patch.ai is None:
        return {k: v for k, v in ai_settings.items() if k != "step_models"}, []
    for step, choice in patch.ai.step_models.items():
        loc: list[str | int] = ["body", "ai", "step_models", step]
        llm_steps.check_known_step(step, loc)
        if choice is None:
            models = {k: v for k, v in ai_settings.get("step_models", {}).items() if k != step}
            ai_settings = {**ai_settings, "step_models": models}
            continue
        try:
            ai_settings = llm_registry.with_step_model(ai_settings, step, choice.model_dump(exclude_none=True))
        except (ValidationFailed, OfflineLlmNotAllowed) as exc:
            raise ValidationFailed.at(loc, exc.detail, "unknown_model") from exc
    return ai_settings, list(patch.ai.step_models)


def _smtp_settings(smtp: SmtpDefaultsPatch | None, stored: dict[str, Any] | None,
                   tenant_id: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The new ``smtp_settings`` and the names of what changed (``smtp.password`` when the password did)."""
    if smtp is None:
        return None, ["smtp"]
    try:
        check_host(smtp.host, smtp.port, get_settings().ssrf_allow_hosts)
    except UnsafeUrlError as exc:
        raise ValidationFailed.at(["body", "smtp", "host"], str(exc), "unsafe_url") from exc
    stored = stored or {}
    same_server = stored.get("host") == smtp.host and stored.get("username") == smtp.username
    if "password" in smtp.model_fields_set:
        password = crypto.encrypt(smtp.password, tenant_id) if smtp.password else None
    else:
        password = stored.get("password_encrypted") if same_server else None
    new = {"host": smtp.host, "port": smtp.port, "username": smtp.username, "tls": smtp.tls,
           "password_encrypted": password}
    changed = [f"smtp.{field}" for field in ("host", "port", "username", "tls") if stored.get(field) != new[field]]
    if "password" in smtp.model_fields_set or password != stored.get("password_encrypted"):
        changed.append("smtp.password")
    return new, changed or ["smtp"]
