"""A local API Gateway (HTTP API, payload format 2.0) for the routes template.yaml declares.

Requests are matched against the ``HttpApi`` events of the template's
functions, turned into the same v2.0 event API Gateway sends, and handed to the
function's handler in this process. A path no route declares gets API
Gateway's own 404 (``{"message": "Not Found"}``) without reaching any handler,
so a route that works locally is a route the template deploys.

HTTP itself is uvicorn's (its h11 protocol): chunked bodies, malformed lengths
(a 400), keep-alive and idle timeouts behave like a maintained server, not like
``http.server``. The gateway is the ASGI application uvicorn calls; each
handler runs in a thread of its own, as each Lambda invocation has its own
environment. What it does and does not emulate: docs/local-gateway.md.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from funnel_dev.template import HttpRoute

log = logging.getLogger("funnel_dev.gateway")

TEXT_CONTENT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml",
                      "application/x-www-form-urlencoded", "application/javascript", "+json", "+xml")
LOCAL_API_ID = "localapi"
# The methods an HTTP API route can name (ANY stands for all of them). Any other method (TRACE, CONNECT,
# WebDAV's, a lower-case "get") matches no route: API Gateway answers it with its 404, like an unknown path.
API_GATEWAY_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
IDLE_TIMEOUT_SECONDS = 5  # uvicorn's default; API Gateway documents no number for its own
GRACEFUL_SHUTDOWN_SECONDS = 30  # longer than any routed function's timeout (the API's is 29 s)
HOP_BY_HOP_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive", "upgrade"})
Invoke = Callable[[str, dict], object]   # (function logical id, event) -> handler result
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


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
        if method not in API_GATEWAY_METHODS:
            return None
        for compiled in self.routes:
            parameters = compiled.match(method, path)
            if parameters is not None:
                return compiled.route, parameters
        return None


def _is_text(content_type: str) -> bool:
    content_type = content_type.lower()
    return any(marker in content_type for marker in TEXT_CONTENT_TYPES)


def build_event(route: HttpRoute, path_parameters: dict[str, str], method: str, raw_path: str,
                raw_query: str, header_pairs: list[tuple[str, str]], body: bytes, source_ip: str,
                protocol: str = "HTTP/1.1") -> dict:
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
            "http": {"method": method, "path": raw_path, "protocol": protocol, "sourceIp": source_ip,
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


JSON_HEADERS = {"content-type": "application/json"}
NOT_FOUND = b'{"message":"Not Found"}'
TOO_LARGE = b'{"message":"Request Entity Too Large"}'
INTERNAL_ERROR = b'{"message":"Internal Server Error"}'


class InvalidResponse(ValueError):
    """A handler's answer cannot be written as HTTP (a status out of range, CR/LF or non-Latin-1 in a header)."""


def response_head(status: int, headers: dict[str, str], cookies: list[str],
                  length: int) -> list[tuple[bytes, bytes]]:
    """The header lines of an answer, checked here so that a bad one is this gateway's 500 rather than an
    error half way through writing the response (API Gateway, too, answers 500 to a malformed one)."""
    if not 200 <= status <= 599:
        raise InvalidResponse(f"status code {status}")
    try:
        lines = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
                 if name.lower() not in HOP_BY_HOP_HEADERS]
        lines += [(b"set-cookie", cookie.encode("latin-1")) for cookie in cookies]
    except UnicodeEncodeError as exc:
        raise InvalidResponse(str(exc)) from exc
    if status not in (204, 304):  # neither has a body, nor a length (RFC 9110)
        lines.append((b"content-length", str(length).encode()))
    try:
        h11.Response(status_code=status, headers=lines)  # h11's own validation of names and values
    except h11.LocalProtocolError as exc:
        raise InvalidResponse(str(exc)) from exc
    return lines


class IdleClosingH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with its keep-alive timer also running before the first request and while
    a request head is still arriving.

    uvicorn arms the timer only after a response and stops it on any byte received, so a connection that
    never sends a request, or sends its head a byte at a time, would stay open for ever. Here the timer
    runs from the connection's start until a whole request head has arrived (``handle_events`` stops it
    then), and again after each response, as uvicorn does.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, without stopping the idle timer first
        self.conn.receive_data(data)
        self.handle_events()


class LocalGateway:
    def __init__(self, routes: list[HttpRoute], invoke: Invoke, host: str = "127.0.0.1", port: int = 8000,
                 cors: dict | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                 idle_timeout_seconds: int = IDLE_TIMEOUT_SECONDS):
        self.router = Router(routes)
        self.invoke = invoke
        self.cors = CorsPolicy(cors)
        self.max_body_bytes = max_body_bytes
        # Bound here, so a taken port fails the runtime's start and port 0 has its number before start().
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=2048)
        self._address = self._socket.getsockname()[:2]
        self._server = uvicorn.Server(uvicorn.Config(
            self.asgi, http=IdleClosingH11Protocol, ws="none", lifespan="off", interface="asgi3", loop="asyncio",
            log_config=None, access_log=False, server_header=False,
            proxy_headers=False,  # sourceIp is the peer's address, whatever X-Forwarded-For says
            timeout_keep_alive=idle_timeout_seconds, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS))
        if logging.getLogger("uvicorn.error").level == logging.NOTSET:  # not its start and stop lines
            logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        # One thread per request, ended with it: nothing idles between requests (the tests' leak checks), and
        # stop() joins those still answering.
        self._request_threads: set[threading.Thread] = set()
        self._request_threads_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self._address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._serve, name="funnel-local-gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local gateway did not start on {self.url}") from self._failure
            time.sleep(0.01)

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # noqa: BLE001 (start() reports it; a thread's exception would be lost)
            self._failure = exc
            log.exception("the local gateway stopped")

    def stop(self) -> None:
        """Stop accepting, let the requests being answered finish (uvicorn closes idle connections at once),
        and join every thread the gateway started."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(GRACEFUL_SHUTDOWN_SECONDS + 5)
            if self._thread.is_alive():
                log.error("the local gateway did not stop within %s s", GRACEFUL_SHUTDOWN_SECONDS + 5)
        self._socket.close()  # uvicorn closed it if it ran; not if start() never came
        with self._request_threads_lock:
            threads = list(self._request_threads)
        for thread in threads:
            thread.join(GRACEFUL_SHUTDOWN_SECONDS)
            if thread.is_alive():
                log.error("a local gateway request (%s) was still running after the gateway stopped", thread.name)

    # ------------------------------------------------------------ the ASGI application uvicorn calls
    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off and WebSockets are not served: nothing else comes
            return
        started = time.perf_counter()
        method = scope["method"]  # as sent: methods are case-sensitive, and API Gateway's are upper case
        raw_path = scope["raw_path"].decode("ascii")  # h11 admits only visible ASCII in the request target
        raw_query = scope["query_string"].decode("ascii")
        header_pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        headers = dict(header_pairs)  # for the few single-valued ones read here
        declared_length = headers.get("content-length")  # h11 has refused a malformed one with a 400
        if declared_length is not None and int(declared_length) > self.max_body_bytes:
            await self._send(send, 413, JSON_HEADERS, [], TOO_LARGE)  # uvicorn reads and drops the body
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:  # a chunked body declares no length
                await self._send(send, 413, JSON_HEADERS, [], TOO_LARGE)
                return
            if not message.get("more_body", False):
                break
        origin = headers.get("origin")
        cors_origin = origin if origin is not None and self.cors.allows(origin) else None
        if method == "OPTIONS" and cors_origin is not None and headers.get("access-control-request-method"):
            await self._send(send, 204, self.cors.response_headers(cors_origin, preflight=True), [], b"")
            return
        matched = self.router.match(method, raw_path)
        if matched is None:
            await self._send(send, 404, JSON_HEADERS, [], NOT_FOUND)
            return
        route, parameters = matched
        event = build_event(route, parameters, method, raw_path, raw_query, header_pairs, bytes(body),
                            scope["client"][0] if scope.get("client") else "127.0.0.1",
                            protocol=f"HTTP/{scope['http_version']}")
        try:
            result = await self._in_own_thread(self.invoke, route.function_id, event)
            status, response_headers, cookies, payload = _normalise_result(result)
            if cors_origin is not None:
                response_headers.update(self.cors.response_headers(cors_origin, preflight=False))
            head = response_head(status, response_headers, cookies, len(payload))
        except Exception:
            log.exception("%s %s: handler %s failed", method, raw_path, route.function_id)
            status, payload = 500, INTERNAL_ERROR
            head = response_head(status, JSON_HEADERS, [], len(payload))
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": b"" if status in (204, 304) else payload})
        log.info("%s %s%s -> %s (%s, %.0f ms)", method, raw_path, f"?{raw_query}" if raw_query else "", status,
                 route.function_id, (time.perf_counter() - started) * 1000)

    @staticmethod
    async def _send(send: Send, status: int, headers: dict[str, str], cookies: list[str], payload: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": response_head(status, headers, cookies, len(payload))})
        await send({"type": "http.response.body", "body": b"" if status in (204, 304) else payload})

    async def _in_own_thread(self, function: Callable[..., object], *args: object) -> object:
        """``function(*args)`` in a new thread, awaited without blocking the event loop."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[object] = loop.create_future()

        def settle(succeeded: bool, value: Any) -> None:
            if not outcome.cancelled():
                (outcome.set_result if succeeded else outcome.set_exception)(value)

        def run() -> None:
            try:
                try:
                    value, succeeded = function(*args), True
                except Exception as exc:  # noqa: BLE001 (handed to the awaiting request)
                    value, succeeded = exc, False
                try:
                    loop.call_soon_threadsafe(settle, succeeded, value)
                except RuntimeError:  # the loop is closed: stop() gave up waiting, nobody reads this answer
                    log.warning("%s finished after the local gateway stopped", args[0] if args else function)
            finally:
                with self._request_threads_lock:
                    self._request_threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name="funnel-local-gateway-request", daemon=False)
        with self._request_threads_lock:
            self._request_threads.add(thread)
        thread.start()
        return await outcome
