"""A campaign through the tenant's own SMTP server: a real aiosmtpd server with STARTTLS and AUTH."""
from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import ssl
import time
import uuid

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from funnel import db
from funnel.settings import reset_settings
from funnel_dev.ports import free_port
from tests.support.tenants import new_tenant


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd hook)
        if address.startswith("nobody-"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook name)
        self.messages.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


def _certificate(directory) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp.pem", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def smtp_server(runtime, tmp_path, monkeypatch):
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"mailer" and auth_data.password == b"s3cret!"
        return AuthResult(success=ok)

    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_required=True)
    controller.start()
    monkeypatch.setenv("FUNNEL_SMTP_CA_FILE", cert)
    reset_settings()
    yield controller, inbox
    controller.stop()
    monkeypatch.undo()
    reset_settings()


def test_a_campaign_goes_through_the_tenants_smtp_server_with_starttls(api, smtp_server):
    controller, inbox = smtp_server
    tenant = new_tenant()
    profile = api.post("/v1/smtp-profiles", headers=tenant.headers, json={
        "name": "office relay", "host": "127.0.0.1", "port": controller.port, "username": "mailer",
        "password": "s3cret!", "from_address": "sales@sample.example.com"})
    assert profile.status_code == 201, profile.text
    assert "password" not in profile.json() and "password_encrypted" not in profile.json()
    with db.tenant_transaction(tenant.tenant_id) as conn:
        stored = conn.execute("SELECT password_encrypted FROM smtp_profiles").fetchone()["password_encrypted"]
    assert stored.startswith("v1:") and "s3cret" not in stored
    reader = f"reader-{uuid.uuid4().hex[:6]}@example.org"
    campaign = api.post("/v1/email-campaigns", headers=tenant.headers, json={
        "name": "via smtp", "subject": "ご案内", "from_name": "営業部", "sender_identity": "株式会社サンプル 東京都",
        "body": "{{name}} 様", "recipients": [{"email": reader, "name": "佐藤"}],
        "smtp_profile_id": profile.json()["id"]}).json()
    api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    deadline = time.monotonic() + 20
    while not inbox.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    [(recipients, raw)] = inbox.messages
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert recipients == [reader] and mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "sales@sample.example.com" in str(mail["From"]) and str(mail["Subject"]) == "ご案内"


def test_an_address_the_smtp_server_refuses_is_a_hard_bounce_and_suppressed(api, smtp_server):
    controller, inbox = smtp_server
    tenant = new_tenant()
    profile = api.post("/v1/smtp-profiles", headers=tenant.headers, json={
        "name": "office relay", "host": "127.0.0.1", "port": controller.port, "username": "mailer",
        "password": "s3cret!", "from_address": "sales@sample.example.com"}).json()
    reader, nobody = (f"{who}-{uuid.uuid4().hex[:6]}@example.org" for who in ("reader", "nobody"))
    campaign = api.post("/v1/email-campaigns", headers=tenant.headers, json={
        "name": "via smtp", "subject": "ご案内", "from_name": "営業部", "sender_identity": "株式会社サンプル 東京都",
        "body": "{{name}} 様", "recipients": [{"email": reader}, {"email": nobody}],
        "smtp_profile_id": profile["id"]}).json()
    api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    deadline = time.monotonic() + 30
    while api.get(f"/v1/email-campaigns/{campaign['id']}", headers=tenant.headers).json()["status"] != "sent":
        assert time.monotonic() < deadline, "the campaign never completed"
        time.sleep(0.1)
    assert [recipients for recipients, _ in inbox.messages] == [[reader]]
    messages = {m["email"]: m for m in api.get(f"/v1/email-campaigns/{campaign['id']}/messages",
                                               headers=tenant.headers).json()["items"]}
    assert messages[reader]["status"] == "sent"
    assert messages[nobody]["status"] == "bounced" and "550" in messages[nobody]["error"]
    stats = api.get(f"/v1/email-campaigns/{campaign['id']}/stats", headers=tenant.headers).json()
    assert stats["bounced"] == 1 and stats["sent"] == 2
    suppressed = api.get("/v1/do-not-contact", headers=tenant.headers, params={"kind": "email"}).json()["items"]
    assert [(s["value"], s["reason"]) for s in suppressed] == [(nobody, "hard_bounce")]


def test_smtp_hosts_on_private_networks_are_refused(api):
    tenant = new_tenant()
    for host in ("10.0.0.8", "169.254.169.254", "192.168.1.10"):
        response = api.post("/v1/smtp-profiles", headers=tenant.headers, json={
            "name": "x", "host": host, "port": 587, "from_address": "a@example.com"})
        assert response.status_code == 422, response.text
