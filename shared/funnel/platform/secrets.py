"""Secrets Manager access with an in-process cache (secrets rotate; see ttl)."""
from __future__ import annotations

import json
import threading
import time
from typing import Any

from funnel.platform import aws
from funnel.settings import get_settings

_cache: dict[tuple[str, str], tuple[float, Any]] = {}
_lock = threading.Lock()


def reset_clients() -> None:
    """Drop the cached clients and values (the endpoint or credentials changed)."""
    aws.reset_clients()
    with _lock:
        _cache.clear()


def get_secret(secret_id: str, stage: str = "AWSCURRENT") -> Any:
    """The secret's value, parsed as JSON when it is JSON; None when the stage does not exist."""
    key = (secret_id, stage)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
    client = aws.client("secretsmanager")
    try:
        raw = client.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        if stage == "AWSCURRENT":
            raise
        raw = None  # no such stage (never rotated): remember that too, it is asked on every request
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        value = raw
    with _lock:
        _cache[key] = (now + get_settings().secret_cache_ttl_seconds, value)
    return value
