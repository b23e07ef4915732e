"""SES bounce/complaint notifications through SNS: signatures verified, suppression applied, once."""
from __future__ import annotations

import base64
import datetime
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from funnel import db
from funnel.email import sns
from funnel.settings import reset_settings
from tests.e2e.email.test_campaign import _campaign, _wait_sent
from tests.support.tenants import new_tenant


class FakeSnsEndpoint:
    """Serves a self-signed signing certificate and records subscription confirmations, on loopback."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                       .sign(self.key, hashes.SHA256()))
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.confirmations: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                if self.path.startswith("/confirm"):
                    endpoint.confirmations.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(pem if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def signed(self, message: dict, version: str = "2") -> dict:
        message = {**message, "SignatureVersion": version, "SigningCertURL": f"{self.base}/cert.pem"}
        digest = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self.key.sign(sns.canonical(message), padding.PKCS1v15(), digest)
        return {**message, "Signature": base64.b64encode(signature).decode()}


@pytest.fixture(scope="module")
def endpoint(runtime):
    with pytest.MonkeyPatch.context() as patch:
        fake = FakeSnsEndpoint()
        patch.setenv("FUNNEL_SNS_TRUSTED_URL_PATTERN", r"^http://127\.0\.0\.1:\d+/")
        reset_settings()
        yield fake
        fake.server.shutdown()
    reset_settings()


def _notification(kind: str, tenant_id: str, message_id: str, detail: dict) -> dict:
    event = {"notificationType": kind, "mail": {"messageId": "ses-1",
                                                 "tags": {"tenant_id": [tenant_id], "message_id": [message_id]}},
             kind.lower(): detail}
    return {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": "arn:aws:sns:us-east-1:1:ses",
            "Message": json.dumps(event), "Timestamp": "2026-11-22T12:00:00.000Z"}


def _post(api, message: dict):
    return api.post("/v1/webhooks/ses", content=json.dumps(message).encode(),
                    headers={"content-type": "text/plain; charset=UTF-8"})


def test_subscription_is_confirmed_and_bounces_and_complaints_suppress(runtime, api, endpoint):
    tenant = new_tenant()
    confirm = endpoint.signed({"Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": "t",
                               "TopicArn": "arn:aws:sns:us-east-1:1:ses", "Message": "confirm",
                               "SubscribeURL": f"{endpoint.base}/confirm?token=t", "Timestamp": "2026-11-22T12:00:00Z"})
    assert _post(api, confirm).json() == {"confirmed": True} and endpoint.confirmations
    hard, soft, angry = (f"{w}-{uuid.uuid4().hex[:6]}@example.org" for w in ("hard", "soft", "angry"))
    campaign = _campaign(api, tenant, [{"email": hard}, {"email": soft}, {"email": angry}])
    api.post(f"/v1/email-campaigns/{campaign['id']}/send", headers=tenant.headers)
    rows = {r["email"]: str(r["id"]) for r in _wait_sent(tenant, campaign["id"], 3)}
    bounce = endpoint.signed(_notification("Bounce", tenant.tenant_id, rows[hard], {"bounceType": "Permanent"}))
    assert _post(api, bounce).json() == {"recorded": "Bounce"}
    assert _post(api, bounce).json() == {"duplicate": True}
    complaint = endpoint.signed(_notification("Complaint", tenant.tenant_id, rows[angry], {}), version="1")
    assert _post(api, complaint).status_code == 200
    for _ in range(2):
        transient = endpoint.signed(_notification("Bounce", tenant.tenant_id, rows[soft], {"bounceType": "Transient"}))
        assert _post(api, transient).status_code == 200
    with db.tenant_transaction(tenant.tenant_id) as conn:
        statuses = {r["email"]: r["status"] for r in conn.execute(
            "SELECT email, status FROM email_messages WHERE campaign_id = %s", (campaign["id"],))}
        reasons = {r["value"]: r["reason"] for r in conn.execute("SELECT value, reason FROM suppressions")}
        events = conn.execute("SELECT count(*) AS n FROM email_events WHERE email_message_id = %s",
                              (rows[hard],)).fetchone()["n"]
    assert statuses == {hard: "bounced", soft: "sent", angry: "complained"}  # 2 soft bounces < threshold 3
    assert reasons == {hard: "hard_bounce", angry: "complaint"} and events == 1
    third = endpoint.signed(_notification("Bounce", tenant.tenant_id, rows[soft], {"bounceType": "Transient"}))
    _post(api, third)
    with db.tenant_transaction(tenant.tenant_id) as conn:
        assert conn.execute("SELECT reason FROM suppressions WHERE value = %s", (soft,)).fetchone()["reason"] == \
            "hard_bounce"


def test_forged_tampered_and_foreign_messages_are_refused(runtime, api, endpoint):
    tenant = new_tenant()
    message = endpoint.signed(_notification("Complaint", tenant.tenant_id, str(uuid.uuid4()), {}))
    tampered = {**message, "Message": message["Message"].replace("Complaint", "Delivery")}
    foreign_cert = {**message, "SigningCertURL": "https://evil.example.com/cert.pem"}
    unsigned = {k: v for k, v in message.items() if k != "Signature"}
    other_key = FakeSnsEndpoint()
    forged = other_key.signed(_notification("Complaint", tenant.tenant_id, str(uuid.uuid4()), {}))
    forged["SigningCertURL"] = f"{endpoint.base}/cert.pem"  # signed with a key that is not the certificate's
    for bad in (tampered, foreign_cert, unsigned, forged, {"Type": "Notification"}):
        response = _post(api, bad)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert api.post("/v1/webhooks/ses", content=b"not json", headers={"content-type": "text/plain"}).status_code == 400
    other_key.server.shutdown()
