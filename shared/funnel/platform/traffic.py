"""Whether an HTTP request to a tracked URL (an e-mail pixel or link, a shortlink) is a machine's, not a person's.

Pure rules over the request line and headers, shared by the e-mail tracking (``funnel.email.events``, which adds
its own e-mail-only rules: Apple Mail Privacy Protection, clicks seconds after delivery) and the shortlink redirect
(``funnel.community.shortlinks``).
"""
from __future__ import annotations

from collections.abc import Mapping

# Link scanners, mail security gateways, image proxies, crawlers and HTTP libraries.
MACHINE_AGENTS = ("googleimageproxy", "yahoomailproxy", "barracuda", "proofpoint", "mimecast", "bot", "crawler",
                  "preview", "scanner", "python-requests", "curl", "wget", "go-http-client", "headless",
                  "spider", "slurp", "facebookexternalhit", "embedly", "whatsapp", "skypeuripreview", "python-httpx",
                  "aiohttp")
# Browsers announce speculative loads: Chrome "Sec-Purpose: prefetch" (or "prefetch;prerender"), older Chrome and
# Safari "Purpose: prefetch", Firefox "X-Moz: prefetch".
PREFETCH_HEADERS = ("sec-purpose", "purpose", "x-moz", "x-purpose")


def request_reason(user_agent: str | None, method: str, headers: Mapping[str, str] | None = None) -> str | None:
    """Why this request is a machine's (``head_request``, ``prefetch``, ``no_user_agent``, ``scanner_user_agent``),
    or None. ``headers``' names are lower case (API Gateway v2 gives them so)."""
    if method.upper() == "HEAD":
        return "head_request"
    for name in PREFETCH_HEADERS:
        value = (headers or {}).get(name, "").lower()
        if "prefetch" in value or "prerender" in value or "preview" in value:
            return "prefetch"
    agent = (user_agent or "").strip().lower()
    if not agent:
        return "no_user_agent"
    if any(marker in agent for marker in MACHINE_AGENTS):
        return "scanner_user_agent"
    return None
