"""The browser worker's connections are pinned: every request Chromium makes (navigations, sub-requests, the
guard's own fetches) goes through the egress proxy, which connects only to the address the SSRF guard approves
as it connects. A name that resolves to a public address when the guard checks it and to a private one next
(DNS rebinding) never reaches the private address."""
from __future__ import annotations

import http.server
import socket
import threading

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install funnel[browser])")

from funnel.outreach.forms import engine as engine_module  # noqa: E402 - after the skip above
from funnel.outreach.forms.model import SenderProfile  # noqa: E402

REBINDING_HOST = "rebind.example"
PUBLIC = "8.8.8.8"


class Listener:
    """The private address a rebinding would reach: counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
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


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def rebinding_dns(monkeypatch):
    """Python's resolver answers a public address first, then 127.0.0.1; Chromium's own resolver is told the
    name is 127.0.0.1 (what it would learn if it looked the name up after the guard's check)."""
    real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host == REBINDING_HOST:
            address = PUBLIC if not lookups else "127.0.0.1"
            lookups.append(address)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    def create_connection(address, *args, **kwargs):
        if address[0] == PUBLIC:
            raise ConnectionRefusedError(f"test network: no route to {PUBLIC}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(engine_module, "CHROMIUM_ARGS",
                        [*engine_module.CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBINDING_HOST} 127.0.0.1"])
    return lookups


@pytest.fixture
def entry_site(listener):
    """An allow-listed page that loads a script from the rebinding name (a sub-request)."""
    page = (f'<html><body><h1>Contact</h1><script src="http://{REBINDING_HOST}:{listener.port}/x.js"></script>'
            '<form method="post"><input name="name"><textarea name="message"></textarea>'
            '<button type="submit">Send</button></form></body></html>').encode()

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _engine(allow: list[str]):
    try:
        return engine_module.FormEngine(allow_hosts=allow, timeout=5.0).__enter__()
    except Exception as exc:  # noqa: BLE001 - any launch failure means "no browser here"
        pytest.skip(f"Chromium could not be started: {exc}")


def test_a_sub_request_to_a_rebinding_name_never_reaches_the_private_address(entry_site, listener, rebinding_dns):
    engine = _engine([entry_site.split("/")[2]])
    try:
        engine.submit(entry_site, SenderProfile.from_dict({}), "hello", dry_run=True)
    finally:
        engine.close()
    assert listener.accepted == 0
    assert rebinding_dns[:1] == [PUBLIC]  # the guard's check saw the public answer


def test_a_navigation_to_a_rebinding_name_never_reaches_the_private_address(listener, rebinding_dns):
    engine = _engine([])
    try:
        result = engine.submit(f"http://{REBINDING_HOST}:{listener.port}/", SenderProfile.from_dict({}), "hello",
                               dry_run=True)
    finally:
        engine.close()
    assert listener.accepted == 0 and result.status == "failed"
