"""The browser's egress proxy: a refused host is a 403 before any connection, an allowed one is forwarded
(plain HTTP in origin form, CONNECT as a tunnel), and close() stops its threads."""
from __future__ import annotations

import socket
import threading

import pytest

from funnel.platform.egress_proxy import EgressProxy
from tests.support.network import QuietHandler, serving


class _Echo(QuietHandler):
    """Answers the path, Host and Proxy-Connection it was sent."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.answer(200, f"{self.path} {self.headers.get('Host')} {self.headers.get('Proxy-Connection')}".encode())


@pytest.fixture
def site():
    with serving(_Echo) as server:
        yield server.server_address[1]


@pytest.fixture
def proxy(site):
    egress = EgressProxy(allow_hosts=[f"127.0.0.1:{site}"], connect_timeout=5)
    yield egress
    egress.close()


def _ask(proxy: EgressProxy, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
            if request.startswith(b"CONNECT") and b"\r\n\r\n" in answer:
                break
        return answer


@pytest.mark.parametrize("target", [b"CONNECT 169.254.169.254:80", b"CONNECT [2002:a9fe:a9fe::]:443",
                                    b"GET http://127.0.0.1:1/", b"GET http://[::1/", b"CONNECT 127.0.0.1:80:80",
                                    b"GET https://example.com/"])
def test_a_refused_or_malformed_target_is_a_403(proxy, target):
    assert _ask(proxy, target + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 403 ")
    assert proxy.refused


def test_plain_http_is_forwarded_in_origin_form_without_proxy_headers(proxy, site):
    answer = _ask(proxy, f"GET http://127.0.0.1:{site}/a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:{site}\r\n"
                         "Proxy-Connection: keep-alive\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(f"/a?b=1 127.0.0.1:{site} None".encode())


def test_connect_opens_a_tunnel(proxy, site):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
        conn.sendall(f"CONNECT 127.0.0.1:{site} HTTP/1.1\r\nHost: 127.0.0.1:{site}\r\n\r\n".encode())
        assert conn.recv(65536) == b"HTTP/1.1 200 Connection Established\r\n\r\n"
        conn.sendall(b"GET /tunnelled HTTP/1.0\r\nHost: t\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.endswith(b"/tunnelled t None")


def test_close_stops_every_thread(site):
    egress = EgressProxy(allow_hosts=[f"127.0.0.1:{site}"])
    _ask(egress, f"GET http://127.0.0.1:{site}/ HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    egress.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("egress-proxy") and t.is_alive()]
