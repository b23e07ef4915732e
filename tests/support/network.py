"""Local network pieces for tests: an HTTP server on 127.0.0.1 in a thread, a TCP listener that counts the
connections it accepts, a self-signed TLS certificate, and a resolver that answers a name with a public address
first and with 127.0.0.1 next (DNS rebinding), for the tests of the SSRF guard's pinned connections."""
from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REBINDING_HOST = "rebind.example"
PUBLIC = "8.8.8.8"  # what the rebinding name resolves to first; the test network answers no connection to it


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def page_handler(body: bytes, content_type: str = "text/html; charset=utf-8") -> type[BaseHTTPRequestHandler]:
    """A handler answering every GET with ``body``."""

    class Page(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.answer(200, body, content_type)

    return Page


class LocalHTTPServer:
    """A ThreadingHTTPServer on a free port of ``host`` (or ``port``), serving from a thread between ``start()``
    and ``stop()``. Its loop looks for a stop every 0.05 s: with serve_forever's default of 0.5 s, every stop
    of every test server would wait 0.25 s on average."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0) -> None:
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.host, self.port = host, self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"test-http-{host}:{self.port}", daemon=True)

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[ThreadingHTTPServer]:
    """An HTTP server on a free port of ``host`` while the block runs; its thread has ended when it returns."""
    with LocalHTTPServer(handler, host) as server:
        yield server.httpd


class Listener:
    """A TCP server on 127.0.0.1 counting the connections it accepts (the private address a rebinding would
    reach); it closes each one at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # so that close() stops the accepting thread at once
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Rebinding:
    """What Python's resolver answered for the rebinding name, and every address a connection was asked for."""
    lookups: list[str] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)


def rebind(monkeypatch, host: str = REBINDING_HOST) -> Rebinding:
    """``host`` resolves to :data:`PUBLIC` once, then to 127.0.0.1; connections to :data:`PUBLIC` are refused
    (and recorded, as every connection is) instead of going out to the network."""
    real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection
    seen = Rebinding()

    def getaddrinfo(name, port, *args, **kwargs):
        if name == host:
            address = PUBLIC if not seen.lookups else "127.0.0.1"
            seen.lookups.append(address)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(name, port, *args, **kwargs)

    def create_connection(address, *args, **kwargs):
        seen.connections.append(address[0])
        if address[0] == PUBLIC:
            raise ConnectionRefusedError(f"test network: no route to {PUBLIC}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return seen


def self_signed_certificate(directory: Path, name: str) -> tuple[str, str]:
    """(certificate path, key path) of a one-day CA certificate for ``name`` (a host name or an IP address,
    in its subject alternative name), written to ``directory``; a client trusts it with ``cafile=``."""
    from cryptography import x509  # lazy: only the TLS tests need it
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    try:
        alternative: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alternative = x509.DNSName(name)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alternative]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)
