"""Every fetcher connects to the address the SSRF guard approved: a DNS answer that changes between the check
and the connection (rebinding: public first, loopback next) never reaches the private address, a redirect to a
private address is refused, and the Host header and TLS verification stay those of the host name."""
from __future__ import annotations

import socket
import ssl
from email.message import EmailMessage

import httpx
import pytest

from funnel.content import wordpress
from funnel.content.errors import TransientError
from funnel.email import smtp
from funnel.notifications import delivery
from funnel.platform import ssrf
from funnel.platform.ssrf import UnsafeUrlError
from tests.support.network import PUBLIC, REBINDING_HOST, QuietHandler, self_signed_certificate, serving


def _never_reached_loopback(listener, rebinding_dns) -> None:
    assert listener.accepted == 0
    assert rebinding_dns.connections == [PUBLIC]  # one connection, to the address the check approved
    assert rebinding_dns.lookups == [PUBLIC]      # and one lookup: nothing resolved the name again


def test_fetch_connects_to_the_checked_address(listener, rebinding_dns):
    with pytest.raises(httpx.ConnectError):
        ssrf.fetch(f"http://{REBINDING_HOST}:{listener.port}/")
    _never_reached_loopback(listener, rebinding_dns)


def test_webhook_and_slack_posts_connect_to_the_checked_address(listener, rebinding_dns, monkeypatch):
    monkeypatch.setattr(delivery, "_http_client", None)
    with pytest.raises(httpx.ConnectError):
        delivery._post(f"http://{REBINDING_HOST}:{listener.port}/hook", b"{}", {})
    _never_reached_loopback(listener, rebinding_dns)
    delivery._http().close()


def test_wordpress_requests_connect_to_the_checked_address(listener, rebinding_dns):
    site = wordpress.WordPressSite(f"http://{REBINDING_HOST}:{listener.port}", "editor", "app password")
    with pytest.raises(TransientError):
        site.request("GET", "posts")
    _never_reached_loopback(listener, rebinding_dns)


def test_smtp_connects_to_the_checked_address(listener, rebinding_dns, monkeypatch):
    monkeypatch.setattr(smtp.store, "smtp_profile_with_password", lambda conn, profile_id: {
        "host": REBINDING_HOST, "port": listener.port, "starttls": True, "username": None,
        "password_encrypted": None, "from_address": "sales@example.com"})
    mail = EmailMessage()
    mail["Message-ID"] = "<x@example.com>"
    with pytest.raises(ConnectionRefusedError):
        smtp.send(None, "tenant", "profile", mail, "reader@example.org")
    _never_reached_loopback(listener, rebinding_dns)


def test_a_private_answer_is_refused_before_any_connection(listener, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2002:a9fe:a9fe::", port, 0, 0))])
    for attempt in (lambda: ssrf.fetch("http://six-to-four.example/"),
                    lambda: ssrf.PinnedSMTP("six-to-four.example", 25)):
        with pytest.raises(UnsafeUrlError, match="private or reserved"):
            attempt()


class _Site(QuietHandler):
    """``/to?url`` redirects there; ``/short`` ends its body before its Content-Length; any other path answers
    the Host header it was sent."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"short")
        elif self.path.startswith("/to?"):
            self.send_response(302)
            self.send_header("Location", self.path[4:])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.answer(200, (self.headers.get("Host") or "").encode())


@pytest.fixture
def site():
    with serving(_Site) as server:
        yield server


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://[2002:a9fe:a9fe::]/",
                                    "http://127.0.0.1:1/", "file:///etc/passwd"])
def test_a_redirect_to_a_private_address_is_refused(site, target):
    port = site.server_address[1]
    with pytest.raises(UnsafeUrlError):
        ssrf.fetch(f"http://127.0.0.1:{port}/to?{target}", allow_hosts=[f"127.0.0.1:{port}"])


def test_a_redirect_to_a_name_that_rebinds_is_refused_at_its_connection(site, listener, rebinding_dns):
    port = site.server_address[1]
    with pytest.raises(httpx.ConnectError):
        ssrf.fetch(f"http://127.0.0.1:{port}/to?http://{REBINDING_HOST}:{listener.port}/",
                   allow_hosts=[f"127.0.0.1:{port}"])
    assert listener.accepted == 0 and "127.0.0.1" not in rebinding_dns.connections[1:]


def test_a_pinned_clients_failures_are_httpx_errors(site, listener):
    """Callers catch httpx's errors (the WordPress client: ``httpx.TransportError``), the most specific one."""
    # The listener closes each connection unanswered: an end of stream, or a reset once the request is sent.
    with ssrf.http_client(allow_hosts=[f"127.0.0.1:{listener.port}"]) as client, \
            pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(f"http://127.0.0.1:{listener.port}/")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connected from its backlog; nothing ever answers
        port = silent.getsockname()[1]
        with ssrf.http_client(allow_hosts=[f"127.0.0.1:{port}"], timeout=0.2) as client, \
                pytest.raises(httpx.ReadTimeout):
            client.get(f"http://127.0.0.1:{port}/")
    port = site.server_address[1]
    with ssrf.http_client(allow_hosts=[f"127.0.0.1:{port}"]) as client, \
            pytest.raises(httpx.RemoteProtocolError):  # raised while the body is read
        client.get(f"http://127.0.0.1:{port}/short")


@pytest.fixture
def public_name_routed_to(monkeypatch):
    """``shop.example`` resolves to a public address that the test network routes to a local server."""
    real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))] if host == "shop.example"
        else real_getaddrinfo(host, port, *a, **k)))
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: real_create_connection(
        ("127.0.0.1" if address[0] == PUBLIC else address[0], address[1]), *a, **k))


def test_the_pinned_connection_keeps_the_host_header(site, public_name_routed_to):
    page = ssrf.fetch(f"http://shop.example:{site.server_address[1]}/")
    assert page.status_code == 200 and page.text == f"shop.example:{site.server_address[1]}"


@pytest.fixture
def tls_site(site, tmp_path):
    cert, key = self_signed_certificate(tmp_path, "shop.example")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    site.socket = server_context.wrap_socket(site.socket, server_side=True)
    return site, cert


def test_tls_is_verified_for_the_host_name_not_the_address(tls_site, public_name_routed_to):
    site, cert = tls_site
    port = site.server_address[1]
    with ssrf.http_client(allow_hosts=(), verify=ssl.create_default_context(cafile=cert)) as client:
        assert client.get(f"https://shop.example:{port}/").text == f"shop.example:{port}"
    with ssrf.http_client(allow_hosts=()) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
        client.get(f"https://shop.example:{port}/")  # the system's trust store does not know the test CA

