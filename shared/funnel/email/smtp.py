"""Tenants' own SMTP servers (SMTP profiles): password encrypted at rest, STARTTLS, SSRF-guarded."""
from __future__ import annotations

import smtplib
import ssl

from funnel.db import Connection
from funnel.platform import audit, crypto
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal
from funnel.platform.ssrf import UnsafeUrlError, check_host
from funnel.settings import get_settings

PROFILE_COLUMNS = "id, name, host, port, username, starttls, from_address, created_at"
TIMEOUT_SECONDS = 30


def save_profile(conn: Connection, principal: Principal, *, name: str, host: str, port: int, username: str | None,
                 password: str | None, starttls: bool, from_address: str) -> dict:
    try:
        check_host(host, port, get_settings().ssrf_allow_hosts)
    except UnsafeUrlError as exc:
        raise ValidationFailed(f"host: {exc}") from exc
    row = conn.execute(
        f"INSERT INTO smtp_profiles (name, host, port, username, password_encrypted, starttls, from_address) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {PROFILE_COLUMNS}",
        (name, host, port, username, crypto.encrypt(password, principal.tenant_id) if password else None, starttls,
         from_address)).fetchone()
    audit.record(conn, principal, "smtp_profile.create", "smtp_profile", row["id"], {"host": host})
    return row


def list_profiles(conn: Connection) -> list[dict]:
    return conn.execute(f"SELECT {PROFILE_COLUMNS} FROM smtp_profiles ORDER BY created_at").fetchall()


def send(conn: Connection, tenant_id: str, profile_id: str, mail, recipient: str) -> str:
    profile = conn.execute("SELECT * FROM smtp_profiles WHERE id = %s", (profile_id,)).fetchone()
    if profile is None:
        raise NotFound("SMTP profile not found")
    check_host(profile["host"], profile["port"], get_settings().ssrf_allow_hosts)
    context = ssl.create_default_context(cafile=get_settings().smtp_ca_file)
    with smtplib.SMTP(profile["host"], profile["port"], timeout=TIMEOUT_SECONDS) as server:
        server.ehlo()
        if profile["starttls"]:
            server.starttls(context=context)
            server.ehlo()
        if profile["username"]:
            server.login(profile["username"], crypto.decrypt(profile["password_encrypted"], tenant_id))
        server.send_message(mail, from_addr=profile["from_address"], to_addrs=[recipient])
    return f"smtp:{mail['Message-ID']}"
