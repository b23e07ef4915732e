"""boto3 clients, created once per process and service (Lambda containers reuse them).

Endpoints and credentials come from the environment (``AWS_ENDPOINT_URL`` points
at moto locally); ``reset_clients`` forgets them when that environment changes.
"""
from __future__ import annotations

import threading

from funnel.settings import get_settings

_clients: dict[str, object] = {}
_lock = threading.Lock()


def client(service: str):
    found = _clients.get(service)
    if found is None:
        import boto3  # lazy: functions that never call AWS do not pay for it

        with _lock:
            found = _clients.get(service)
            if found is None:
                found = _clients[service] = boto3.client(service, region_name=get_settings().region)
    return found


def reset_clients() -> None:
    with _lock:
        _clients.clear()
