"""The local API gateway speaks HTTP the way API Gateway's HTTP API does, at the edge where clients differ.

Each case here talks to the running runtime's gateway over a socket of its own, because the behaviour
under test is the HTTP framing (chunked bodies, bad lengths, idle connections, methods no route takes)
that a well-behaved client such as httpx never produces. The fixture echo function
(tests/e2e/fixtures/functions/echo) answers with the v2.0 event it received.
"""
from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "runtime-template.yaml"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
IDLE_TIMEOUT_SECONDS = 5.0  # the gateway's (docs/local-gateway.md)
SOCKET_TIMEOUT_SECONDS = 10.0  # a hang fails the test instead of stalling the suite


@pytest.fixture(scope="module")
def gateway(runtime) -> tuple[str, int]:
    if "FixtureEchoFunction" not in runtime.functions:
        runtime.add_template(FIXTURE_TEMPLATE)
    address = urlsplit(runtime.api_url)
    return address.hostname, address.port


def connection(gateway) -> http.client.HTTPConnection:
    host, port = gateway
    return http.client.HTTPConnection(host, port, timeout=SOCKET_TIMEOUT_SECONDS)


def raw_exchange(gateway, request: bytes) -> tuple[http.client.HTTPResponse, float]:
    """Send ``request`` as bytes on a new connection; the parsed answer and how long it took."""
    started = time.monotonic()
    with socket.create_connection(gateway, timeout=SOCKET_TIMEOUT_SECONDS) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
    return response, time.monotonic() - started


def test_a_chunked_body_is_the_request_body_and_the_connection_serves_the_next_request(gateway):
    client = connection(gateway)
    try:
        client.request("POST", "/fixture/files/notes.txt", body=iter([b"hello ", b"chunked ", b"world"]),
                       headers={"content-type": "text/plain"}, encode_chunked=True)
        echoed = client.getresponse()
        event = json.loads(echoed.read())
        assert echoed.status == 200
        assert (event["body"], event["isBase64Encoded"]) == ("hello chunked world", False)
        assert event["headers"]["transfer-encoding"] == "chunked"
        # the same kept-alive connection: the chunks were not taken for a second request
        client.request("GET", "/healthz")
        health = client.getresponse()
        assert (health.status, json.loads(health.read())) == (200, {"status": "ok"})
    finally:
        client.close()


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "5, 6"])
def test_a_malformed_content_length_answers_400_at_once(gateway, length):
    request = (f"POST /fixture/files/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {length}\r\n\r\nhello").encode()
    response, seconds = raw_exchange(gateway, request)
    assert response.status == 400
    assert seconds < 2


def test_idle_connections_are_closed_by_the_gateway(gateway):
    used = connection(gateway)
    unused, trickling = (socket.create_connection(gateway, timeout=SOCKET_TIMEOUT_SECONDS) for _ in range(2))
    try:
        used.request("GET", "/healthz")
        answer = used.getresponse()
        assert answer.status == 200 and answer.getheader("connection") != "close"
        answer.read()
        started = time.monotonic()
        trickling.sendall(b"GET /healthz HTTP/1.1\r\n")  # a request head that never ends
        # the server closes all three: the one kept alive after its request, the one that never sent any,
        # and the one still sending its head
        for sock in (used.sock, unused, trickling):
            assert sock.recv(1) == b""
        assert time.monotonic() - started < IDLE_TIMEOUT_SECONDS + 2
    finally:
        used.close()
        unused.close()
        trickling.close()


@pytest.mark.parametrize(("method", "path"), [("TRACE", "/healthz"), ("TRACE", "/v1/me"), ("CONNECT", "/v1/me"),
                                              ("PROPFIND", "/v1/contacts")])
def test_a_method_no_route_takes_is_api_gateways_json_404(api, method, path):
    response = api.request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "Not Found"}


def _chunks(total: int, size: int = 1024 * 1024):
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


def test_a_chunked_body_over_10_mb_is_413_and_one_of_10_mb_is_served(gateway):
    client = connection(gateway)
    try:
        client.request("POST", "/fixture/files/big.txt", body=_chunks(MAX_BODY_BYTES + 1),
                       headers={"content-type": "text/plain"}, encode_chunked=True)
        refused = client.getresponse()
        assert refused.status == 413
        assert json.loads(refused.read()) == {"message": "Request Entity Too Large"}
    finally:
        client.close()
    client = connection(gateway)
    try:
        client.request("POST", "/fixture/files/big.txt", body=_chunks(MAX_BODY_BYTES),
                       headers={"content-type": "text/plain"}, encode_chunked=True)
        served = client.getresponse()
        assert served.status == 200
        assert len(json.loads(served.read())["body"]) == MAX_BODY_BYTES
    finally:
        client.close()


def test_a_declared_length_over_10_mb_is_413_before_the_body_is_sent(gateway):
    request = (f"POST /fixture/files/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n").encode()
    response, seconds = raw_exchange(gateway, request)
    assert response.status == 413
    assert seconds < 2


@pytest.mark.parametrize("path", ["/fixture/files/raises", "/fixture/files/header-injection"])
def test_a_failing_or_unwritable_handler_answer_is_api_gateways_json_500(api, path):
    response = api.post(path, content=b"x", headers={"content-type": "text/plain"})
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert "set-cookie" not in response.headers and "x-note" not in response.headers


def test_source_ip_is_the_peer_whatever_x_forwarded_for_says(api, gateway):
    event = api.get("/fixture/items/1", headers={"X-Forwarded-For": "203.0.113.9"}).json()
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-for"] == "203.0.113.9"
