"""Tenants' own SMTP servers (SMTP profiles): password encrypted at rest, STARTTLS, SSRF-guarded."""
from __future__ import annotations

import ssl
from email.message import Message

from funnel.db import Connection, Row
from funnel.email import store_campaigns as store
from funnel.platform import audit, crypto
from funnel.platform.errors import NotFound
from funnel.platform.principal import Principal
from funnel.platform.ssrf import PinnedSMTP, UnsafeUrlError, check_host, refused
from funnel.settings import get_settings

TIMEOUT_SECONDS = 30


def save_profile(conn: Connection, principal: Principal, *, name: str, host: str, port: int, username: str | None,
                 password: str | None, starttls: bool, from_address: str) -> Row:
    try:
        check_host(host, port, get_settings().ssrf_allow_hosts)
    except UnsafeUrlError as exc:
        raise refused("host", exc) from exc
    row = store.insert_smtp_profile(
        conn, name=name, host=host, port=port, username=username,
        password_encrypted=crypto.encrypt(password, principal.tenant_id) if password else None, starttls=starttls,
        from_address=from_address)
    audit.record(conn, principal, "smtp_profile.create", "smtp_profile", row["id"], {"host": host})
    return row


def list_profiles(conn: Connection) -> list[Row]:
    return store.smtp_profiles(conn)


def send(conn: Connection, tenant_id: str, profile_id: str, mail: Message, recipient: str) -> str:
    profile = store.smtp_profile_with_password(conn, profile_id)
    if profile is None:
        raise NotFound("SMTP profile not found")
    context = ssl.create_default_context(cafile=get_settings().smtp_ca_file)
    # Connects to the address the SSRF guard approves at this moment; STARTTLS verifies the host name.
    with PinnedSMTP(profile["host"], profile["port"], get_settings().ssrf_allow_hosts,
                    timeout=TIMEOUT_SECONDS) as server:
        server.ehlo()
        if profile["starttls"]:
            server.starttls(context=context)
            server.ehlo()
        if profile["username"]:
            server.login(profile["username"], crypto.decrypt(profile["password_encrypted"], tenant_id))
        server.send_message(mail, from_addr=profile["from_address"], to_addrs=[recipient])
    return f"smtp:{mail['Message-ID']}"
