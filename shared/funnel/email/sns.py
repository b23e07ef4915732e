"""SES bounce, complaint and delivery notifications arriving through SNS (HTTPS subscription).

Every message's signature is verified (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) with the
certificate at ``SigningCertURL``, which must match ``sns_trusted_url_pattern`` (AWS's SNS hosts over
https); subscription confirmations are confirmed by fetching ``SubscribeURL`` (same rule). Hard bounces
and complaints suppress the address at once; soft bounces are counted and suppress after
``soft_bounce_threshold``. Every notification becomes an ``email_events`` row, once (SNS MessageId).
"""
from __future__ import annotations

import base64
import json
import re
from functools import lru_cache

from funnel import db
from funnel.email import store_events, store_messages
from funnel.observability import count
from funnel.platform import suppression
from funnel.platform.errors import ValidationFailed
from funnel.settings import get_settings

SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}


EVENT_TYPES = {"Bounce": "bounce", "Complaint": "complaint", "Delivery": "delivery"}


class SnsRejected(ValidationFailed):
    status, title, type_suffix = 400, "SNS message rejected", "sns-rejected"


def _trusted(url: str) -> str:
    if not re.match(get_settings().sns_trusted_url_pattern, url or ""):
        raise SnsRejected("the certificate or subscription URL is not an SNS endpoint")
    return url


@lru_cache(maxsize=16)
def _certificate(url: str):
    import httpx
    from cryptography import x509  # only when an SNS message arrives: keeps the API's cold import light

    response = httpx.get(_trusted(url), timeout=10, follow_redirects=False)
    response.raise_for_status()
    return x509.load_pem_x509_certificate(response.content)


def canonical(message: dict) -> bytes:
    fields = SIGNED_FIELDS.get(message.get("Type", ""))
    if fields is None:
        raise SnsRejected(f"unknown SNS message type {message.get('Type')!r}")
    return "".join(f"{name}\n{message[name]}\n" for name in fields if name in message).encode()


def verify(message: dict) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    version = message.get("SignatureVersion")
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(version))
    if algorithm is None or not message.get("Signature"):
        raise SnsRejected("unsigned or unknown signature version")
    try:
        certificate = _certificate(message.get("SigningCertURL", ""))
        certificate.public_key().verify(base64.b64decode(message["Signature"]), canonical(message),
                                        padding.PKCS1v15(), algorithm)
    except SnsRejected:
        raise
    except (InvalidSignature, ValueError, KeyError) as exc:
        raise SnsRejected("the SNS signature does not verify") from exc
    except Exception as exc:  # the certificate could not be fetched or parsed
        raise SnsRejected(f"the signing certificate is unavailable: {type(exc).__name__}") from exc


def handle(body: bytes) -> dict:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise SnsRejected("the body is not an SNS JSON message") from exc
    if not isinstance(message, dict):
        raise SnsRejected("the body is not an SNS JSON message")
    verify(message)
    if message["Type"] == "SubscriptionConfirmation":
        import httpx

        httpx.get(_trusted(message["SubscribeURL"]), timeout=10).raise_for_status()
        return {"confirmed": True}
    if message["Type"] != "Notification":
        return {"ignored": message["Type"]}
    return record_notification(json.loads(message["Message"]), message["MessageId"])


def record_notification(event: dict, sns_message_id: str) -> dict:
    kind = event.get("notificationType") or event.get("eventType")
    tags = (event.get("mail") or {}).get("tags") or {}
    tenant_id, message_id = (tags.get("tenant_id") or [None])[0], (tags.get("message_id") or [None])[0]
    if not tenant_id or not message_id:
        return {"ignored": "not a Funnel campaign message"}
    if kind not in EVENT_TYPES:
        return {"ignored": kind}  # Send, Open, Click, Reject, DeliveryDelay...: our own tracking covers them
    with db.tenant_transaction(tenant_id) as conn:
        address = store_events.message_address(conn, message_id)
        if address is None:
            return {"ignored": "unknown message"}
        if not store_events.insert_provider_event(
                conn, message_id, EVENT_TYPES[kind],
                event.get("bounce") or event.get("complaint") or event.get("delivery") or {}, f"sns:{sns_message_id}"):
            return {"duplicate": True}
        if kind == "Complaint":
            count("EmailComplaints", tenant_id=tenant_id)
            suppression.suppress(conn, "email", address, "complaint", f"ses:{sns_message_id}")
            store_messages.set_final_status(conn, message_id, "complained")
        elif kind == "Bounce":
            count("EmailsBounced", tenant_id=tenant_id)
            if bounce_suppresses(event, store_events.soft_bounce_count(conn, address)):
                suppression.suppress(conn, "email", address, "hard_bounce", f"ses:{sns_message_id}")
                store_messages.set_final_status(conn, message_id, "bounced")
    return {"recorded": kind}


def bounce_suppresses(event: dict, soft_bounces: int) -> bool:
    """A hard (Permanent) bounce suppresses the address at once; soft ones once ``soft_bounces`` (this one
    included) reach ``soft_bounce_threshold``."""
    return ((event.get("bounce") or {}).get("bounceType") == "Permanent"
            or soft_bounces >= get_settings().soft_bounce_threshold)
