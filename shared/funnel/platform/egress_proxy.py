"""A local HTTP forward proxy that makes every connection of a browser through the SSRF guard.

Chromium resolves host names itself, so checking a URL before the browser loads it leaves a gap: the name can
resolve to a private address by the time Chromium connects (DNS rebinding). Launched with this proxy, the
browser never resolves a site's name: it sends ``CONNECT host:port`` (HTTPS, WebSockets) or an absolute-form
request (plain HTTP) here, and the proxy connects with :func:`funnel.platform.ssrf.connect` (one lookup, every
answer checked, the approved address connected to). A refused host gets a 403 and is recorded in ``refused``.
TLS stays end to end between the browser and the site, so certificates are verified for the host name.

One proxy per browser; it listens on 127.0.0.1 on a free port, serves each connection in a daemon thread and
stops with :meth:`EgressProxy.close`.
"""
from __future__ import annotations

import logging
import socket
import threading
from urllib.parse import urlsplit

from funnel.platform.ssrf import AllowHosts, UnsafeUrlError, connect, parse_url

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
IDLE_TIMEOUT_SECONDS = 60.0
HOP_BY_HOP = {b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"}


class EgressProxy:
    def __init__(self, allow_hosts: AllowHosts = (), connect_timeout: float = 15.0):
        self.allow_hosts = allow_hosts
        self.connect_timeout = connect_timeout
        self.refused: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)  # so that close() stops the accepting thread promptly
        self.port: int = self._server.getsockname()[1]
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="egress-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._server.close()
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            self._open.clear()

    # ---- plumbing -------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), name="egress-proxy-conn", daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _forget(self, *socks: socket.socket | None) -> None:
        with self._lock:
            for sock in socks:
                if sock is not None:
                    self._open.discard(sock)
                    _close(sock)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(IDLE_TIMEOUT_SECONDS)
            head, rest = _read_head(client)
            if head is None:
                return
            request_line, _, headers = head.partition(b"\r\n")
            method, target, version = (request_line.split(b" ") + [b"", b""])[:3]
            try:
                if method == b"CONNECT":
                    host, port = _authority(target.decode("latin-1"))
                else:
                    scheme, host, port = parse_url(target.decode("latin-1"))
                    if scheme != "http":
                        raise UnsafeUrlError("only plain HTTP is proxied without CONNECT")
                upstream = connect(host, port, self.allow_hosts, self.connect_timeout)
            except UnsafeUrlError as exc:
                self.refused.append(target.decode("latin-1", "replace"))
                log.info("SSRF guard refused %s: %s", target[:200], exc)
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            self._track(upstream)
            upstream.settimeout(IDLE_TIMEOUT_SECONDS)
            if method == b"CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
            else:
                upstream.sendall(_origin_form(method, target, version, headers) + rest)
            _relay(client, upstream)
        except OSError:
            pass  # either side went away
        finally:
            self._forget(client, upstream)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _read_head(client: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk or len(data) > MAX_HEAD_BYTES:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _authority(target: str) -> tuple[str, int]:
    try:
        parts = urlsplit("//" + target)
        if not parts.hostname or parts.port is None or parts.path or parts.username is not None:
            raise ValueError("not host:port")
        return parts.hostname, parts.port
    except ValueError as exc:
        raise UnsafeUrlError(f"not a valid CONNECT target: {exc}") from exc


def _origin_form(method: bytes, target: bytes, version: bytes, headers: bytes) -> bytes:
    """The request as the origin expects it: path only, no proxy headers, one request per connection."""
    parts = urlsplit(target.decode("latin-1"))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kept = [line for line in headers.split(b"\r\n")
            if line and line.split(b":", 1)[0].strip().lower() not in HOP_BY_HOP]
    return b"\r\n".join([b" ".join([method, path.encode("latin-1"), version]), *kept,
                         b"Connection: close", b"", b""])


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy both ways until either side closes."""
    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    upload = threading.Thread(target=pump, args=(client, upstream), name="egress-proxy-relay", daemon=True)
    upload.start()
    pump(upstream, client)
    upload.join(IDLE_TIMEOUT_SECONDS)
