"""Signatures of Funnel's outgoing webhooks: HMAC-SHA256 over "<timestamp>.<body>".

Headers: ``Funnel-Timestamp`` (unix seconds) and ``Funnel-Signature: v1=<hex>``.
A receiver recomputes the HMAC with its signing secret and refuses a timestamp
outside the replay window (5 minutes by default). ``verify`` is the reference
implementation (and what the tests use as the receiver).
"""
from __future__ import annotations

import hashlib
import hmac
import time

REPLAY_WINDOW_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: str, timestamp_header: str | None, signature_header: str | None, body: bytes,
           now: float | None = None, window: int = REPLAY_WINDOW_SECONDS) -> bool:
    if not timestamp_header or not signature_header or not timestamp_header.isdigit():
        return False
    timestamp = int(timestamp_header)
    if abs((now if now is not None else time.time()) - timestamp) > window:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature_header)
