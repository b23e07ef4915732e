"""A local OpenAI-compatible HTTP server for tests (any area): a real HTTP server
implementing ``POST /chat/completions`` (also under ``/v1``), so the real
``openai`` SDK path is exercised.

Answers come from a script (first in, first out) and then from a default
responder::

    server = OpenAIServer(responder=lambda request: '{"ok": true}').start()
    server.script(Reply.error(429), Reply.error(500), Reply.text("hello"))
    ... api_base_url=server.url ...
    server.requests  # every request body received, in order
    server.stop()
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.network import LocalHTTPServer


@dataclass
class Reply:
    status: int = 200
    content: str | None = None
    body: dict | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def text(cls, content: str) -> Reply:
        return cls(content=content)

    @classmethod
    def json(cls, value) -> Reply:
        return cls(content=json.dumps(value))

    @classmethod
    def error(cls, status: int, message: str | None = None) -> Reply:
        kind = {429: "rate_limit_exceeded", 401: "invalid_api_key", 404: "model_not_found"}.get(status, "server_error")
        return cls(status=status, body={"error": {"message": message or f"scripted {status}", "type": kind,
                                                  "code": kind}},
                   headers={"retry-after": "0"} if status == 429 else {})


class OpenAIServer:
    def __init__(self, responder: Callable[[dict], str | Reply] | None = None, host: str = "127.0.0.1",
                 port: int = 0):
        self.responder = responder or (lambda request: "ok")
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                if self.path.rstrip("/") not in ("/chat/completions", "/v1/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                length = int(self.headers.get("content-length") or 0)
                try:
                    request = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    return self._send(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
                if not self.headers.get("authorization", "").startswith("Bearer "):
                    return self._send(401, {"error": {"message": "no API key", "type": "invalid_api_key"}})
                reply = server._next(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    return self._send(reply.status, reply.body or {"error": {"message": "error"}}, reply.headers)
                content = reply.content or ""
                prompt_tokens = sum(len(str(m.get("content", ""))) for m in request.get("messages", [])) // 4 + 1
                self._send(200, {
                    "id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "created": int(time.time()),
                    "model": request.get("model", "unknown"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4 + 1,
                              "total_tokens": prompt_tokens + len(content) // 4 + 1}})

            def _send(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = LocalHTTPServer(Handler, host, port)
        self.url = f"http://{host}:{self._server.port}/v1"

    def _next(self, request: dict) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
        answer = self.responder(request)
        return answer if isinstance(answer, Reply) else Reply.text(answer)

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def start(self) -> OpenAIServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
