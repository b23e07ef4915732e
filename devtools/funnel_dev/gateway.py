"""A local API Gateway (HTTP API, payload format 2.0) for the routes template.yaml declares.

Requests are matched against the ``HttpApi`` events of the template's
functions, turned into the same v2.0 event API Gateway sends, and handed to the
function's handler in this process. A path no route declares gets API
Gateway's own 404 (``{"message": "Not Found"}``) without reaching any handler,
so a route that works locally is a route the template deploys.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from funnel_dev.template import HttpRoute

log = logging.getLogger("funnel_dev.gateway")

TEXT_CONTENT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml",
                      "application/x-www-form-urlencoded", "application/javascript", "+json", "+xml")
LOCAL_API_ID = "localapi"
Invoke = Callable[[str, dict], object]   # (function logical id, event) -> handler result


class CompiledRoute:
    def __init__(self, route: HttpRoute):
        self.route = route
        self.is_default = route.path == "$default"
        self.greedy = "+}" in route.path
        self.parameter_count = route.path.count("{")
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", route.path if not self.is_default else ""):
            if part.startswith("{") and part.endswith("+}"):
                pattern += f"(?P<{part[1:-2]}>.+)"
            elif part.startswith("{"):
                pattern += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                pattern += re.escape(part)
        self.regex = re.compile(f"^{pattern}$")

    def priority(self) -> tuple:
        # API Gateway prefers the most specific route: literal paths, then fewer
        # parameters, greedy paths next, $default last; an exact method beats ANY.
        return (self.is_default, self.greedy, self.parameter_count, -len(self.route.path),
                self.route.method == "ANY")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.route.method not in ("ANY", method):
            return None
        if self.is_default:
            return {}
        found = self.regex.match(path)
        return found.groupdict() if found else None


class Router:
    def __init__(self, routes: list[HttpRoute]):
        self.routes = sorted((CompiledRoute(route) for route in routes), key=CompiledRoute.priority)

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        for compiled in self.routes:
            parameters = compiled.match(method, path)
            if parameters is not None:
                return compiled.route, parameters
        return None


def _is_text(content_type: str) -> bool:
    content_type = content_type.lower()
    return any(marker in content_type for marker in TEXT_CONTENT_TYPES)


def build_event(route: HttpRoute, path_parameters: dict[str, str], method: str, raw_path: str,
                raw_query: str, header_pairs: list[tuple[str, str]], body: bytes, source_ip: str) -> dict:
    """The API Gateway HTTP API payload format 2.0 event."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in header_pairs:
        name = name.lower()
        if name == "cookie":  # v2.0 moves cookies to their own list
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = datetime.now(UTC)
    event: dict = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": LOCAL_API_ID,
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": headers.get("host", "127.0.0.1").split(".")[0],
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": headers.get("user-agent", "")},
            "requestId": uuid.uuid4().hex,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        if _is_text(headers.get("content-type", "")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def _normalise_result(result: object) -> tuple[int, dict[str, str], list[str], bytes]:
    """Payload format 2.0 response: a dict with statusCode, or anything else -> 200 JSON (as API Gateway infers)."""
    if isinstance(result, dict) and "statusCode" in result:
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ",".join(str(v) for v in values)
        return int(result["statusCode"]), headers, list(result.get("cookies") or []), raw
    text = result if isinstance(result, str) else json.dumps(result)
    return 200, {"content-type": "application/json"}, [], text.encode()


class CorsPolicy:
    """The HttpApi's CorsConfiguration, answered by the gateway the way API Gateway does."""

    def __init__(self, configuration: dict | None):
        configuration = configuration or {}
        self.enabled = bool(configuration)
        self.origins = [str(o) for o in configuration.get("AllowOrigins", [])]
        self.methods = ",".join(configuration.get("AllowMethods", ["*"]))
        self.headers = ",".join(configuration.get("AllowHeaders", []))
        self.expose = ",".join(configuration.get("ExposeHeaders", []))
        self.credentials = bool(configuration.get("AllowCredentials", False))
        self.max_age = configuration.get("MaxAge")

    def allows(self, origin: str | None) -> bool:
        return self.enabled and origin is not None and ("*" in self.origins or origin in self.origins)

    def response_headers(self, origin: str, preflight: bool) -> dict[str, str]:
        headers = {"access-control-allow-origin": origin, "vary": "origin"}
        if self.credentials:
            headers["access-control-allow-credentials"] = "true"
        if self.expose:
            headers["access-control-expose-headers"] = self.expose
        if preflight:
            headers["access-control-allow-methods"] = self.methods
            if self.headers:
                headers["access-control-allow-headers"] = self.headers
            if self.max_age is not None:
                headers["access-control-max-age"] = str(self.max_age)
        return headers


class LocalGateway:
    def __init__(self, routes: list[HttpRoute], invoke: Invoke, host: str = "127.0.0.1", port: int = 8000,
                 cors: dict | None = None, max_body_bytes: int = 10 * 1024 * 1024):
        self.router = Router(routes)
        self.invoke = invoke
        self.cors = CorsPolicy(cors)
        self.max_body_bytes = max_body_bytes  # API Gateway's payload limit
        # Request threads are joined by stop() (server_close with block_on_close), after the connections
        # kept alive by clients are shut for reading so that their threads see EOF and end.
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="funnel-local-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        if self._thread:
            self._thread.join(timeout=5)
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:  # a request being answered still writes its response
            try:
                connection.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        self._server.server_close()

    def _handler_class(self):
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "funnel-local-gateway"

            def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's signature)
                log.debug("%s " + format, self.client_address[0], *args)

            def setup(self) -> None:
                super().setup()
                with gateway._connections_lock:
                    gateway._connections.add(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with gateway._connections_lock:
                        gateway._connections.discard(self.connection)

            def _handle(self) -> None:
                started = time.perf_counter()
                raw_path, _, raw_query = self.path.partition("?")
                length = int(self.headers.get("content-length") or 0)
                if length > gateway.max_body_bytes:
                    self._send(413, {"content-type": "application/json"}, [], b'{"message":"Request Entity Too Large"}')
                    return
                body = self.rfile.read(length) if length else b""
                origin = self.headers.get("origin")
                method = self.command.upper()
                if (method == "OPTIONS" and gateway.cors.allows(origin)
                        and self.headers.get("access-control-request-method")):
                    self._send(204, gateway.cors.response_headers(origin, preflight=True), [], b"")
                    return
                matched = gateway.router.match(method, raw_path)
                if matched is None:
                    self._send(404, {"content-type": "application/json"}, [], b'{"message":"Not Found"}')
                    return
                route, parameters = matched
                event = build_event(route, parameters, method, raw_path, raw_query, list(self.headers.items()),
                                    body, self.client_address[0])
                try:
                    status, headers, cookies, payload = _normalise_result(gateway.invoke(route.function_id, event))
                except Exception:
                    log.exception("%s %s: handler %s failed", method, raw_path, route.function_id)
                    status, headers, cookies, payload = (500, {"content-type": "application/json"}, [],
                                                         b'{"message":"Internal Server Error"}')
                if gateway.cors.allows(origin):
                    headers.update(gateway.cors.response_headers(origin, preflight=False))
                self._send(status, headers, cookies, payload)
                log.info("%s %s -> %s (%s, %.0f ms)", method, self.path, status, route.function_id,
                         (time.perf_counter() - started) * 1000)

            def _send(self, status: int, headers: dict[str, str], cookies: list[str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                for cookie in cookies:
                    self.send_header("set-cookie", cookie)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle

        return RequestHandler
