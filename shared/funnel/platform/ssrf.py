"""SSRF guard for every URL Funnel fetches or submits to on a user's behalf.

A URL is refused unless its scheme is http(s) and every address its host
resolves to is public. Loopback, private, link-local (cloud metadata lives at
169.254.169.254), multicast, reserved and unspecified addresses are refused.
The only way around it is an explicit allow-list of ``host`` or ``host:port``
entries (settings ``ssrf_allow_hosts``), meant for local test sites.

Redirects must be re-checked hop by hop: use :func:`fetch` rather than letting
an HTTP client follow them, or call :func:`check_url` on every hop.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

ALLOWED_SCHEMES = {"http", "https"}
MAX_REDIRECTS = 5


class UnsafeUrlError(ValueError):
    """The URL may not be fetched: bad scheme, unresolvable, or not a public address."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or not ip.is_global
    )


def _allowed(host: str, port: int, allow_hosts: Iterable[str]) -> bool:
    host = host.lower().strip("[]")
    for entry in allow_hosts:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host or entry == f"{host}:{port}":
            return True
    return False


def check_url(url: str, allow_hosts: Iterable[str] = ()) -> str:
    """Return the URL unchanged when it is safe to fetch, else raise UnsafeUrlError."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsafeUrlError(f"not a valid URL: {url!r}") from exc
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeUrlError(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
    host = parts.hostname
    if not host:
        raise UnsafeUrlError("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrlError("URLs with credentials are not allowed")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrlError("the URL has an invalid port") from exc
    if _allowed(host, port, allow_hosts):
        return url
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrlError(f"the host {host!r} does not resolve") from exc
    # The sockaddr is typed for every family; for the IPv4/IPv6 ones asked here its first item is the address.
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(_is_public(a) for a in addresses):
        raise UnsafeUrlError(f"the host {host!r} resolves to a private or reserved address")
    return url


def check_host(host: str, port: int, allow_hosts: Iterable[str] = ()) -> None:
    """The same guard for a non-HTTP connection (an SMTP server): public addresses or the allow-list only."""
    if not host or _allowed(host, port, allow_hosts):
        if not host:
            raise UnsafeUrlError("no host")
        return
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrlError(f"the host {host!r} does not resolve") from exc
    if not addresses or not all(_is_public(a) for a in addresses):
        raise UnsafeUrlError(f"the host {host!r} resolves to a private or reserved address")


@dataclass(frozen=True)
class FetchedPage:
    url: str
    status_code: int
    content_type: str
    text: str


def fetch(url: str, allow_hosts: Iterable[str] = (), timeout: float = 10.0,
          max_bytes: int = 2_000_000, headers: dict[str, str] | None = None) -> FetchedPage:
    """GET a URL, following redirects only to URLs that pass the guard too."""
    import httpx  # lazy: not every function that imports this module fetches

    allow = tuple(allow_hosts)
    current = check_url(url, allow)
    with httpx.Client(follow_redirects=False, timeout=timeout,
                      headers={"User-Agent": "FunnelBot/1.0", **(headers or {})}) as client:
        for _ in range(MAX_REDIRECTS + 1):
            with client.stream("GET", current) as response:
                if response.is_redirect and "location" in response.headers:
                    current = check_url(urljoin(current, response.headers["location"]), allow)
                    continue
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        break
                encoding = response.encoding or "utf-8"
                return FetchedPage(url=current, status_code=response.status_code,
                                   content_type=response.headers.get("content-type", ""),
                                   text=bytes(body).decode(encoding, errors="replace"))
    raise UnsafeUrlError(f"more than {MAX_REDIRECTS} redirects")
