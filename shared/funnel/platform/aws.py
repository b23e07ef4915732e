"""boto3 clients, created once per process and service (Lambda containers reuse them).

Endpoints and credentials come from the environment (``AWS_ENDPOINT_URL`` points
at moto locally); ``reset_clients`` forgets them when that environment changes.
"""
from __future__ import annotations

import threading

from funnel.settings import get_settings

_clients: dict[str, object] = {}
_lock = threading.Lock()


# A call made while a person waits (a click's redirect sending its derived touch) must not wait out an AWS
# brownout: botocore's defaults are a 60 s connect and read timeout with retries. Such calls fail fast instead and
# the caller records the loss.
REQUEST_PATH_CONFIG = {"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 2, "mode": "standard"}}


def client(service: str, *, request_path: bool = False):
    """The process's client for ``service``; ``request_path``: the fail-fast one for calls a person waits on."""
    key = f"{service}:request-path" if request_path else service
    found = _clients.get(key)
    if found is None:
        import boto3  # lazy: functions that never call AWS do not pay for it

        with _lock:
            found = _clients.get(key)
            if found is None:
                config = None
                if request_path:
                    from botocore.config import Config

                    config = Config(**REQUEST_PATH_CONFIG)
                found = _clients[key] = boto3.client(service, region_name=get_settings().region, config=config)
    return found


def reset_clients() -> None:
    with _lock:
        _clients.clear()
