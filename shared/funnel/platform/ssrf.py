"""SSRF guard for every URL Funnel fetches or submits to on a user's behalf.

A URL is refused unless its scheme is http(s) and every address its host
resolves to is public (see :func:`is_public_address`; the decisions are in
``ssrf.md`` next to this module). The only way around it is an explicit
allow-list of ``host`` or ``host:port`` entries (settings ``ssrf_allow_hosts``),
meant for local test sites.

Checking a URL when it is saved is not enough: its host may resolve elsewhere
when it is fetched (DNS rebinding). So every connection resolves the host once,
in :func:`approved_addresses`, which checks every answer, and connects to an
approved address; nothing looks the name up a second time. HTTP clients get
this through :func:`http_client` (an httpx client whose connection pool's
network backend is handed approved addresses only, TLS still verified for the
host name), SMTP through :class:`PinnedSMTP` (:func:`connect`). Redirects are not followed by the client: :func:`fetch`
follows them hop by hop, each hop's connection passing the guard again.
"""
from __future__ import annotations

import contextlib
import functools
import ipaddress
import smtplib
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from funnel.platform.errors import ValidationFailed

if TYPE_CHECKING:
    import ssl

    import httpx

ALLOWED_SCHEMES = {"http", "https"}
MAX_REDIRECTS = 5
# IPv6 ranges that carry or route to an IPv4 address (Python's ``is_global`` accepts some of them, e.g. 6to4
# 2002:a9fe:a9fe:: is 169.254.169.254). Refused whatever the embedded address: no public site needs them.
IPV4_EMBEDDING_RANGES = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96",            # IPv4-compatible (deprecated)
    "::ffff:0:0/96",    # IPv4-mapped
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b::/96",     # NAT64, well-known prefix
    "64:ff9b:1::/48",   # NAT64, local-use prefixes
    "2001::/32",        # Teredo
    "2002::/16",        # 6to4
))

AllowHosts = Iterable[str] | Callable[[], Iterable[str]]


class UnsafeUrlError(ValueError):
    """The URL may not be fetched: bad scheme, malformed, unresolvable, or not a public address."""


def refused(field: str, exc: UnsafeUrlError) -> ValidationFailed:
    """The 422 for a refused URL or host in a request body field (``FieldError`` shape, field named)."""
    return ValidationFailed(f"{field}: {exc}", errors=[{"loc": ["body", field], "msg": str(exc), "type": "unsafe_url"}])


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address that does not embed or route to IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in network for network in IPV4_EMBEDDING_RANGES):
        return False
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


def _allow_list(allow_hosts: AllowHosts) -> tuple[str, ...]:
    return tuple(allow_hosts() if callable(allow_hosts) else allow_hosts)


def _allowed(host: str, port: int, allow_hosts: AllowHosts) -> bool:
    host = host.lower().strip("[]")
    for entry in _allow_list(allow_hosts):
        entry = entry.strip().lower()
        if entry and (entry == host or entry == f"{host}:{port}"):
            return True
    return False


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL the guard may look at, without any DNS; else UnsafeUrlError."""
    if any(ord(c) < 32 or ord(c) == 127 for c in url):  # urlsplit would silently drop tabs and newlines
        raise UnsafeUrlError("the URL contains control characters")
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ALLOWED_SCHEMES:
            raise UnsafeUrlError(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
        if not host:
            raise UnsafeUrlError("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise UnsafeUrlError("URLs with credentials are not allowed")
        port = parts.port or (443 if scheme == "https" else 80)
    except UnsafeUrlError:
        raise
    except ValueError as exc:  # "[::1" (unclosed bracket), "host:80:80", a port out of range
        raise UnsafeUrlError(f"not a valid URL: {exc}") from exc
    if any(c.isspace() for c in host):
        raise UnsafeUrlError("the URL's host is not valid")
    return scheme, host, port


def approved_addresses(host: str, port: int, allow_hosts: AllowHosts = ()) -> list[str]:
    """Resolve ``host`` once; its addresses when every one is public, else UnsafeUrlError.

    An allow-listed host is returned as it is (the connection resolves it itself)."""
    if not host:
        raise UnsafeUrlError("no host")
    host = host.strip("[]")
    if _allowed(host, port, allow_hosts):
        return [host]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise UnsafeUrlError(f"the host {host!r} does not resolve") from exc
    # The sockaddr is typed for every family; for the IPv4/IPv6 ones asked here its first item is the address.
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses or not all(is_public_address(a) for a in addresses):
        raise UnsafeUrlError(f"the host {host!r} resolves to a private or reserved address")
    return addresses


def check_url(url: str, allow_hosts: AllowHosts = ()) -> str:
    """Return the URL unchanged when it is safe to fetch now, else raise UnsafeUrlError."""
    _, host, port = parse_url(url)
    approved_addresses(host, port, allow_hosts)
    return url


def check_host(host: str, port: int, allow_hosts: AllowHosts = ()) -> None:
    """The same guard for a non-HTTP connection (an SMTP server): public addresses or the allow-list only."""
    if not host or any(c.isspace() or c in "/[]@" for c in host.strip("[]")):
        raise UnsafeUrlError("not a valid host name")
    approved_addresses(host, port, allow_hosts)


def connect(host: str, port: int, allow_hosts: AllowHosts = (), timeout: float | None = None,
            source_address: tuple[str, int] | None = None) -> socket.socket:
    """A TCP connection to an address the guard approved in this very call (one DNS lookup, no second one)."""
    last_error: OSError | None = None
    for address in approved_addresses(host, port, allow_hosts):
        try:
            return socket.create_connection((address, port), timeout, source_address=source_address)
        except OSError as exc:  # try the host's next approved address
            last_error = exc
    assert last_error is not None  # approved_addresses never answers an empty list
    raise last_error


# ---------------------------------------------------------------- HTTP
def _settings_allow_hosts() -> Iterable[str]:
    from funnel.settings import get_settings

    return get_settings().ssrf_allow_hosts


def http_client(allow_hosts: AllowHosts | None = None, **kwargs) -> httpx.Client:
    """An httpx client whose every connection goes through the guard (see :func:`_pinned_transport`).

    The request keeps its URL, so the Host header, TLS SNI and certificate verification are for the host
    name; only the TCP connection goes to the address the guard approved. Redirects are not followed and
    environment proxies are ignored (a proxy would make the connection for us, unchecked).
    ``allow_hosts`` defaults to the settings' ``ssrf_allow_hosts``, read at each connection."""
    import httpx  # lazy: not every function that imports this module fetches

    transport = _pinned_transport(_settings_allow_hosts if allow_hosts is None else allow_hosts,
                                  verify=kwargs.pop("verify", True))
    kwargs.setdefault("follow_redirects", False)
    return httpx.Client(transport=transport, trust_env=False, **kwargs)


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """The TLS context of a client that verifies as httpx does by default, loaded once per process: loading the
    trust store takes tens of milliseconds (more on a busy machine), and a WordPress site or a fetch makes a
    client per call. One context serves many connections at once, as it does within one httpx client."""
    import httpx

    return httpx.create_ssl_context(verify=True, trust_env=False)


def _pinned_transport(allow: AllowHosts, verify: ssl.SSLContext | str | bool) -> httpx.BaseTransport:
    """An httpx transport over an httpcore connection pool whose network backend connects only to addresses
    :func:`approved_addresses` gave in that very call: the name is resolved once, by the guard, and the
    backend is handed an address, never the name. httpx's own ``HTTPTransport`` has no public way to choose
    its pool's backend, so this is the small part of it that maps a request onto httpcore's (both public
    APIs: ``httpx.BaseTransport``, ``httpcore.ConnectionPool(network_backend=...)``)."""
    import httpcore
    import httpx

    class PinnedBackend(httpcore.SyncBackend):
        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
            last_error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
            for address in approved_addresses(host, port, allow):
                try:  # an address (no DNS lookup for it), or an allow-listed name as it is
                    return super().connect_tcp(address, port, timeout, local_address, socket_options)
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:  # try the next approved address
                    last_error = exc
            assert last_error is not None  # approved_addresses never answers an empty list
            raise last_error

    @contextlib.contextmanager
    def as_httpx_errors() -> Iterator[None]:
        """httpcore's errors as httpx's (callers catch ``httpx.TransportError``): each httpcore error class has
        an httpx one of the same name; the most specific wins (ConnectTimeout, not TimeoutException)."""
        try:
            yield
        except Exception as exc:
            for cls in type(exc).__mro__:
                if cls.__module__.startswith("httpcore") and isinstance(getattr(httpx, cls.__name__, None), type):
                    raise getattr(httpx, cls.__name__)(str(exc)) from exc
            raise

    class ResponseStream(httpx.SyncByteStream):
        def __init__(self, stream) -> None:
            self.stream = stream

        def __iter__(self) -> Iterator[bytes]:
            with as_httpx_errors():
                yield from self.stream

        def close(self) -> None:
            self.stream.close()

    class PinnedTransport(httpx.BaseTransport):
        def __init__(self) -> None:
            # httpx's HTTPTransport defaults: 100 connections, 20 kept alive for 5 s; HTTP/1.1 only.
            ssl_context = _default_tls() if verify is True else httpx.create_ssl_context(verify=verify, trust_env=False)
            self.pool = httpcore.ConnectionPool(
                ssl_context=ssl_context, max_connections=100,
                max_keepalive_connections=20, keepalive_expiry=5.0, network_backend=PinnedBackend())

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            core_request = httpcore.Request(
                method=request.method, headers=request.headers.raw, content=request.stream,
                url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                                 target=request.url.raw_path),
                extensions=request.extensions)
            with as_httpx_errors():
                response = self.pool.handle_request(core_request)
            return httpx.Response(status_code=response.status, headers=response.headers,
                                  stream=ResponseStream(response.stream), extensions=response.extensions)

        def close(self) -> None:
            self.pool.close()

    return PinnedTransport()


@dataclass(frozen=True)
class FetchedPage:
    url: str
    status_code: int
    content_type: str
    text: str


def fetch(url: str, allow_hosts: AllowHosts = (), timeout: float = 10.0,
          max_bytes: int = 2_000_000, headers: dict[str, str] | None = None) -> FetchedPage:
    """GET a URL, following redirects only to URLs that pass the guard too."""
    current = url
    parse_url(current)
    with http_client(allow_hosts, timeout=timeout,
                     headers={"User-Agent": "FunnelBot/1.0", **(headers or {})}) as client:
        for _ in range(MAX_REDIRECTS + 1):
            with client.stream("GET", current) as response:
                if response.is_redirect and "location" in response.headers:
                    try:
                        current = urljoin(current, response.headers["location"])
                    except ValueError as exc:
                        raise UnsafeUrlError(f"the redirect goes to no valid URL: {exc}") from exc
                    parse_url(current)
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


# ---------------------------------------------------------------- SMTP
class PinnedSMTP(smtplib.SMTP):
    """smtplib.SMTP connecting through :func:`connect`; STARTTLS still verifies the server's host name
    (smtplib passes the name given to ``connect`` as ``server_hostname``)."""

    def __init__(self, host: str, port: int, allow_hosts: AllowHosts = (), timeout: float = 30.0):
        self.allow_hosts = allow_hosts
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host, port, timeout):
        return connect(host, port, self.allow_hosts, timeout, self.source_address)
