"""Local HTTP receivers for outgoing webhooks (Slack, signed webhooks): they record every request
and answer with a scripted status (fail N times, then succeed; or always fail)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.support.network import LocalHTTPServer


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self, fail_first: int = 0, failure_status: int = 503, always_fail: bool = False) -> None:
        self.fail_first = fail_first
        self.failure_status = failure_status
        self.always_fail = always_fail
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.requests.append(ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                             body))
                    failing = receiver.always_fail or len(receiver.requests) <= receiver.fail_first
                self.send_response(receiver.failure_status if failing else 200)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"unavailable" if failing else b"ok")

        self._server = LocalHTTPServer(Handler)
        self.url = f"http://127.0.0.1:{self._server.port}/hook"

    def __enter__(self) -> Receiver:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()
