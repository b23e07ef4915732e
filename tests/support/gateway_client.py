"""An HTTP client of the local gateway (``funnel dev``'s API) that never sends on a connection the gateway is
closing.

The gateway closes a keep-alive connection after 5 idle seconds (docs/local-gateway.md), and httpx keeps an idle
connection for 5 seconds too: a request sent just as both run out goes out on a socket the server has just closed,
and fails with "connection reset by peer". Expiring idle connections well before the server does closes that race
(a client behind a load balancer does the same with its own idle timeout)."""
from __future__ import annotations

from typing import Any

import httpx

IDLE_CONNECTION_SECONDS = 2.0  # under the gateway's 5 s


def gateway_client(base_url: str, **options: Any) -> httpx.Client:
    options.setdefault("timeout", 30)
    return httpx.Client(base_url=base_url, limits=httpx.Limits(keepalive_expiry=IDLE_CONNECTION_SECONDS), **options)
