"""Document e-mails, pure rules: signed tokens, machine events, MIME, reminder rules, SNS signatures,
and the tracking handler's answers (with the database and the queue replaced)."""
from __future__ import annotations

import base64
import datetime
import email
import email.policy
import importlib.util
import json
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from funnel.email import events, mime, reminders, sns, tokens

KEY = b"k" * 32
TENANT = str(uuid.uuid4())
MESSAGE = str(uuid.uuid4())
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"
TRACKING_APP = Path(__file__).resolve().parents[3] / "functions" / "email_tracking" / "app.py"


# --- tokens -------------------------------------------------------------------------------------------

def test_a_token_round_trips_and_carries_tenant_message_and_target():
    token = tokens.sign(KEY, "c", TENANT, MESSAGE, "https://docs.example.com/a.pdf?x=1&y=日本")
    assert tokens.verify(KEY, token, "c") == (TENANT, MESSAGE, "https://docs.example.com/a.pdf?x=1&y=日本", 0)
    assert "/" not in token and "+" not in token and "=" not in token  # URL-safe in a path segment


def test_a_reminders_tokens_carry_its_round():
    assert tokens.verify(KEY, tokens.sign(KEY, "o", TENANT, MESSAGE, None, 2), "o") == (TENANT, MESSAGE, None, 2)
    assert tokens.verify(KEY, tokens.sign(KEY, "c", TENANT, MESSAGE, "https://a.example/", 1), "c").reminder_round == 1
    reminder = mime.build(CAMPAIGN, RECIPIENT, TENANT, KEY, "https://t.example.com", reminder_round=1).as_bytes()
    html = email.message_from_bytes(reminder, policy=email.policy.default).get_body(("html",)).get_content()
    pixel = html.split('<img src="', 1)[1].split('"', 1)[0]
    assert tokens.verify(KEY, pixel.rsplit("/t/o/", 1)[1][:-4], "o").reminder_round == 1


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),                      # signature changed
    lambda t: tokens.sign(KEY, "c", TENANT, MESSAGE, "https://evil.example.com/").split(".")[0] + "." + t.split(".")[1],
    lambda t: tokens.sign(b"another key", "c", TENANT, MESSAGE, "https://docs.example.com/"),
    lambda t: tokens.sign(KEY, "o", TENANT, MESSAGE),                        # another kind
    lambda t: "garbage", lambda t: "", lambda t: "a.b.c", lambda t: "%%%.###",
    lambda t: tokens._b64(b'["c","t","m",null,-1]') + "." + tokens._b64(  # a signed but negative round
        __import__("hmac").new(KEY, tokens._b64(b'["c","t","m",null,-1]').encode(), "sha256").digest()[:16]),
])
def test_a_tampered_foreign_or_malformed_token_is_refused(mutate):
    good = tokens.sign(KEY, "c", TENANT, MESSAGE, "https://docs.example.com/")
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(KEY, mutate(good), "c")


# --- machine events ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, agent, method, ip, age, reason", [
    ("open", BROWSER, "GET", "198.51.100.7", 3600, None),
    ("open", BROWSER, "HEAD", "198.51.100.7", 3600, "head_request"),
    ("open", "Mozilla/5.0", "GET", "198.51.100.7", 3600, "apple_mail_privacy_protection"),
    ("open", BROWSER, "GET", "17.58.0.10", 3600, "apple_mail_privacy_protection"),
    ("open", "Mozilla/5.0 (Windows NT 5.1) GoogleImageProxy", "GET", "66.249.1.1", 3600, "scanner_user_agent"),
    ("click", "Mimecast/1.0", "GET", "198.51.100.7", 3600, "scanner_user_agent"),
    ("click", BROWSER, "GET", "198.51.100.7", 3, "click_within_seconds_of_delivery"),
    ("click", BROWSER, "GET", "198.51.100.7", 3600, None),
    ("click", "", "GET", "198.51.100.7", 3600, "no_user_agent"),
    ("click", BROWSER, "GET", "not an ip", 3600, None),
])
def test_machine_opens_and_clicks_are_recognised(kind, agent, method, ip, age, reason):
    assert events.machine_reason(kind, agent, method, ip, age) == reason


# --- MIME ----------------------------------------------------------------------------------------------

CAMPAIGN = {"subject": "{{company_name}} 様 資料のご送付", "body": "{{name}} 様\n資料: https://docs.example.com/a.pdf\n以上",
            "from_name": "山田 太郎", "from_address": "sales@example.co.jp",
            "sender_identity": "株式会社サンプル 東京都千代田区1-1 03-1234-5678", "attachment_urls": []}
RECIPIENT = {"id": MESSAGE, "email": "reader@example.org", "name": "佐藤 花子", "company": "アルファ株式会社"}


def test_a_message_is_multipart_alternative_with_utf8_headers_one_click_and_opt_out():
    raw = mime.build(CAMPAIGN, RECIPIENT, TENANT, KEY, "https://t.example.com").as_bytes()
    assert all(byte < 128 for byte in raw.split(b"\n\n", 1)[0])  # headers are 7-bit (RFC 2047 encoded)
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    assert str(mail["Subject"]) == "アルファ株式会社 様 資料のご送付"
    assert mail["To"].addresses[0].display_name == "佐藤 花子" and mail["From"].addresses[0].display_name == "山田 太郎"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = str(mail["List-Unsubscribe"]).strip().strip("<>")  # may be folded onto a second line
    assert unsubscribe.startswith("https://t.example.com/u/")
    assert tokens.verify(KEY, unsubscribe.rsplit("/", 1)[1], "u") == (TENANT, MESSAGE, None, 0)
    text, html = mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content()
    for part in (text, html):
        assert "株式会社サンプル" in part and "配信停止" in part
        assert unsubscribe in part and "sales@example.co.jp" in part
    assert "佐藤 花子 様" in text
    click = html.split('href="', 1)[1].split('"', 1)[0]
    assert tokens.verify(KEY, click.rsplit("/t/c/", 1)[1], "c")[2] == "https://docs.example.com/a.pdf"
    pixel = html.split('<img src="', 1)[1].split('"', 1)[0]
    assert pixel.endswith(".gif") and tokens.verify(KEY, pixel.rsplit("/t/o/", 1)[1][:-4], "o")[1] == MESSAGE


def test_recipient_values_are_escaped_in_html():
    evil = {**RECIPIENT, "name": "<script>alert(1)</script>"}
    html = email.message_from_bytes(mime.build(CAMPAIGN, evil, TENANT, KEY, "https://t.example.com").as_bytes(),
                                    policy=email.policy.default).get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_attachments_become_signed_expiring_links():
    campaign = {**CAMPAIGN, "attachment_urls": [{"id": "att1", "filename": "会社案内.pdf", "key": "k"}]}
    text = email.message_from_bytes(mime.build(campaign, RECIPIENT, TENANT, KEY, "https://t.example.com").as_bytes(),
                                    policy=email.policy.default).get_body(("plain",)).get_content()
    link = text.split("会社案内.pdf: ", 1)[1].split()[0]
    attachment, _, expires = tokens.verify(KEY, link.rsplit("/t/a/", 1)[1], "a")[2].partition(":")
    assert attachment == "att1" and int(expires) > datetime.datetime.now().timestamp() + 29 * 86400


# --- reminders ----------------------------------------------------------------------------------------

STRATEGY = {"rules": [{"when": "not_opened", "after_days": 3}, {"when": "opened_not_clicked", "after_days": 2}],
            "max_reminders": 2}


def test_reminder_rules_follow_the_strategy_and_the_maximum():
    assert reminders.reminder_rule(STRATEGY, "not_opened", 0)["after_days"] == 3
    assert reminders.reminder_rule(STRATEGY, "opened_not_clicked", 1)["after_days"] == 2
    assert reminders.reminder_rule(STRATEGY, "clicked", 0) is None
    assert reminders.reminder_rule(STRATEGY, "not_opened", 2) is None
    assert reminders.reminder_rule(None, "not_opened", 0) is None
    assert reminders.first_reminder_days(STRATEGY) == 2
    assert reminders.first_reminder_days({**STRATEGY, "max_reminders": 0}) is None
    assert reminders.first_reminder_days({"rules": [{"when": "someday"}]}) is None


# --- SNS ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signer():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.unit")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return key, x509.load_pem_x509_certificate(cert.public_bytes(serialization.Encoding.PEM))


def _signed(key, message: dict, version: str) -> dict:
    message = {**message, "SignatureVersion": version,
               "SigningCertURL": "https://sns.ap-northeast-1.amazonaws.com/SimpleNotificationService-x.pem"}
    digest = hashes.SHA256() if version == "2" else hashes.SHA1()
    return {**message, "Signature": base64.b64encode(key.sign(sns.canonical(message), padding.PKCS1v15(),
                                                                digest)).decode()}


NOTIFICATION = {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:ap-northeast-1:1:ses",
                "Message": json.dumps({"notificationType": "Bounce"}), "Timestamp": "2026-01-01T00:00:00.000Z"}


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_signatures_v1_and_v2_verify_and_any_change_is_refused(monkeypatch, signer, version):
    key, cert = signer
    monkeypatch.setattr(sns, "_certificate", lambda url: sns._trusted(url) and cert)
    message = _signed(key, NOTIFICATION, version)
    sns.verify(message)
    for tampered in ({**message, "Message": json.dumps({"notificationType": "Complaint"})},
                     {**message, "SignatureVersion": "3"}, {**message, "Signature": ""},
                     {**message, "SigningCertURL": "https://sns.evil.example.com/x.pem"},
                     {**message, "SigningCertURL": "http://sns.ap-northeast-1.amazonaws.com/x.pem"},
                     {**message, "Type": "Surprise"}):
        with pytest.raises(sns.SnsRejected):
            sns.verify(tampered)


@pytest.mark.parametrize("url, trusted", [
    ("https://sns.us-east-1.amazonaws.com/cert.pem", True),
    ("https://sns.cn-north-1.amazonaws.com.cn/cert.pem", True),
    ("https://sns.us-east-1.amazonaws.com.evil.io/cert.pem", False),
    ("https://evil.io/sns.us-east-1.amazonaws.com/cert.pem", False),
    ("http://sns.us-east-1.amazonaws.com/cert.pem", False),
])
def test_only_https_sns_hosts_are_trusted_for_certificates(url, trusted):
    if trusted:
        assert sns._trusted(url) == url
    else:
        with pytest.raises(sns.SnsRejected):
            sns._trusted(url)


def test_a_body_that_is_not_an_sns_message_is_refused():
    for body in (b"not json", b"[]", b"{}"):
        with pytest.raises(sns.SnsRejected):
            sns.handle(body)


# --- tracking handler -----------------------------------------------------------------------------------

@pytest.fixture()
def tracking(monkeypatch):
    spec = importlib.util.spec_from_file_location("tracking_unit", TRACKING_APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._key = KEY
    recorded, queued = [], []
    monkeypatch.setattr(events, "record_event", lambda **kw: recorded.append(kw))
    from funnel.email import events_queue

    monkeypatch.setattr(events_queue, "enqueue", queued.append)
    module.recorded, module.queued = recorded, queued
    return module


def _event(path: str, method: str = "GET") -> dict:
    return {"rawPath": path, "requestContext": {"requestId": "r-1", "http": {
        "method": method, "sourceIp": "198.51.100.7", "userAgent": BROWSER}}}


def test_the_pixel_is_a_gif_with_no_cache_headers_and_records_an_open(tracking):
    answer = tracking.handler(_event(f"/t/o/{tokens.sign(KEY, 'o', TENANT, MESSAGE)}.gif"), None)
    assert answer["statusCode"] == 200 and answer["headers"]["content-type"] == "image/gif"
    assert "no-store" in answer["headers"]["cache-control"] and answer["isBase64Encoded"]
    assert base64.b64decode(answer["body"]).startswith(b"GIF89a")
    assert tracking.recorded[0]["event_type"] == "open" and tracking.recorded[0]["ip"] == "198.51.100.7"
    assert tracking.recorded[0]["dedup_key"] == f"open:{MESSAGE}:r-1"


def test_a_click_redirects_only_to_its_signed_target(tracking):
    answer = tracking.handler(_event(f"/t/c/{tokens.sign(KEY, 'c', TENANT, MESSAGE, 'https://docs.example.com/')}"),
                              None)
    assert answer["statusCode"] == 302 and answer["headers"]["location"] == "https://docs.example.com/"
    for token in (tokens.sign(KEY, "c", TENANT, MESSAGE, "javascript:alert(1)"),
                  tokens.sign(b"x" * 32, "c", TENANT, MESSAGE, "https://evil.example.com/"), "nonsense"):
        refused = tracking.handler(_event(f"/t/c/{token}"), None)
        assert refused["statusCode"] == 404 and "location" not in refused["headers"]
        assert refused["headers"]["content-type"].startswith("text/html")
    assert len(tracking.recorded) == 1


def test_unsubscribe_get_asks_and_post_unsubscribes(tracking):
    path = f"/u/{tokens.sign(KEY, 'u', TENANT, MESSAGE)}"
    page = tracking.handler(_event(path), None)
    assert page["statusCode"] == 200 and 'method="post"' in page["body"] and not tracking.recorded
    done = tracking.handler(_event(path, "POST"), None)
    assert done["statusCode"] == 200 and tracking.recorded[0]["event_type"] == "unsubscribe"
    assert tracking.handler(_event("/u/bad", "POST"), None)["statusCode"] == 404


def test_when_the_database_is_down_the_event_is_queued_and_the_answer_unchanged(tracking, monkeypatch):
    import psycopg

    def down(**kwargs):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(events, "record_event", down)
    answer = tracking.handler(_event(f"/t/o/{tokens.sign(KEY, 'o', TENANT, MESSAGE)}.gif"), None)
    assert answer["statusCode"] == 200 and answer["headers"]["content-type"] == "image/gif"
    assert tracking.queued == [{"tenant_id": TENANT, "message_id": MESSAGE, "type": "open", "url": None,
                                "reminder_round": 0,
                                "user_agent": BROWSER, "ip": "198.51.100.7", "method": "GET",
                                "dedup_key": f"open:{MESSAGE}:r-1"}]


def test_when_the_signing_key_is_unreadable_the_recipient_still_gets_a_pixel_or_a_page(tracking):
    def unreadable():
        raise RuntimeError("Secrets Manager unreachable")

    tracking._key = None
    tracking._tracking_key = unreadable
    pixel = tracking.handler(_event(f"/t/o/{tokens.sign(KEY, 'o', TENANT, MESSAGE)}.gif"), None)
    assert pixel["statusCode"] == 200 and pixel["headers"]["content-type"] == "image/gif"
    click = tracking.handler(_event(f"/t/c/{tokens.sign(KEY, 'c', TENANT, MESSAGE, 'https://a.example/')}"), None)
    assert click["statusCode"] == 503 and "location" not in click["headers"]


def test_the_tracking_function_imports_no_framework_or_sdk():
    import subprocess
    import sys

    code = (f"import importlib.util as u, sys; s = u.spec_from_file_location('t', {str(TRACKING_APP)!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); "
            "print(sorted(n for n in ('fastapi', 'boto3', 'botocore', 'pydantic', 'psycopg') if n in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
