"""Request context middleware: body limits (size, JSON depth, NaN, NUL), authentication, tenant context, idempotency.

The tenant context is established here, once, and carried on ``request.state``
(routes read it through ``deps.principal``) and on every log line.

It is a plain ASGI middleware that calls the (blocking) database directly: on
Lambda, Mangum runs one request per event loop, so there is nothing to block,
and skipping thread hops and BaseHTTPMiddleware's streams keeps latency low.
"""
from __future__ import annotations

import json
import math
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from funnel.api.contract import MAX_JSON_DEPTH
from funnel.api.problems import from_error, problem
from funnel.observability import bind_tenant
from funnel.platform import auth, idempotency
from funnel.platform.errors import FunnelError, Unauthorized, ValidationFailed
from funnel.settings import get_settings

# Routes anyone may call; everything else under /v1 needs a token or an API key.
PUBLIC_PATHS = {"/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/accept-invite", "/openapi.json",
                "/healthz", "/docs", "/docs/oauth2-redirect",
                # a forgotten password: the e-mailed link is the credential
                "/v1/auth/password-reset", "/v1/auth/password-reset/confirm",
                # a stranger creates a workspace; the mailed verification link is the credential
                "/v1/signup", "/v1/auth/verify-email"}
BODY_METHODS = {"POST", "PUT", "PATCH"}
# Webhook senders (Stripe, SNS, plugins) authenticate by signature, checked by their routes; a sign-in with an
# OpenID provider (any configured provider id) is how a caller gets a token.
PUBLIC_PREFIXES = ("/v1/webhooks/", "/v1/auth/oidc/")
ACCEPTED_BODY_TYPES = ("application/json", "multipart/form-data", "text/plain", "text/csv")
# Routes whose bodies are bulk data, allowed settings.max_bulk_body_bytes instead of max_body_bytes.
BULK_BODY_PATHS = {"/v1/activities/batch", "/v1/activity-imports"}
# Plugin webhooks too: GitHub sends deliveries of up to 25 MB (a push or a pull request with a long body), and a
# refused one is lost (GitHub does not redeliver by itself); the limit is still Lambda's (see the setting).
BULK_BODY_PREFIXES = ("/v1/webhooks/plugins/",)


def client_ip(request) -> str | None:
    """The caller's address (behind API Gateway, Mangum puts requestContext.http.sourceIp into the ASGI client)."""
    return request.client.host if request.client else None


def is_bulk(path: str) -> bool:
    """Whether ``path`` takes bodies up to settings.max_bulk_body_bytes rather than max_body_bytes."""
    return path in BULK_BODY_PATHS or path.startswith(BULK_BODY_PREFIXES)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or not path.startswith("/v1/") or path.startswith(PUBLIC_PREFIXES)


def authenticate(headers: Headers, ip: str | None):
    authorization = headers.get("authorization", "")
    api_key = headers.get("x-api-key")
    if authorization.lower().startswith("bearer "):
        return auth.authenticate_bearer(authorization[7:].strip(), ip)
    if api_key:
        return auth.authenticate_api_key(api_key.strip(), ip)
    raise Unauthorized("send Authorization: Bearer <token> or X-Api-Key")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it exceeds ``limit``."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class _NonFinite:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse to here, so that the check can say where they were."""


def _non_finite(_name: str) -> _NonFinite:
    return _NonFinite()


def json_body_error(body: bytes) -> ValidationFailed | None:
    """Why a JSON body cannot be taken although it parses, naming the place (``["body", "metadata", ...]``):
    nested deeper than MAX_JSON_DEPTH, NaN/Infinity (not JSON; PostgreSQL's jsonb refuses them), or a NUL character
    in a string or a key (PostgreSQL text cannot hold it). None when it is fine or not JSON at all (FastAPI answers
    400 for that)."""
    try:
        document = json.loads(body, parse_constant=_non_finite)
    except RecursionError:
        return ValidationFailed.at(["body"], f"nested deeper than {MAX_JSON_DEPTH} levels", "json_depth")
    except json.JSONDecodeError:
        return None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits, or bytes that are no Unicode text
        return ValidationFailed.at(["body"], str(exc), "json_invalid_value")
    stack: list[tuple[Any, list[str | int], int]] = [(document, ["body"], 0)]
    while stack:
        value, loc, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                return ValidationFailed.at(loc, f"nested deeper than {MAX_JSON_DEPTH} levels", "json_depth")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and "\x00" in key:
                    return ValidationFailed.at([*loc, key], "a key contains a NUL character", "string_nul")
                stack.append((item, [*loc, key], depth + 1))
        elif isinstance(value, str) and "\x00" in value:
            return ValidationFailed.at(loc, "contains a NUL character, which text cannot hold", "string_nul")
        elif isinstance(value, _NonFinite) or isinstance(value, float) and not math.isfinite(value):
            return ValidationFailed.at(loc, "NaN and Infinity are not JSON numbers", "finite_number")
    return None


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        method, path = scope["method"], scope["path"]
        headers = Headers(scope=scope)
        body = b""
        if method in BODY_METHODS:
            declared = headers.get("content-length", "")
            limit = settings.max_bulk_body_bytes if is_bulk(path) else settings.max_body_bytes
            too_large = problem(413, f"the body exceeds {limit} bytes", instance=path)
            if declared.isdigit() and int(declared) > limit:
                await too_large(scope, receive, send)
                return
            read = await _read_body(receive, limit)
            if read is None:
                await too_large(scope, receive, send)
                return
            body = read
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if body and content_type not in ACCEPTED_BODY_TYPES:
                await problem(415, "send the body as application/json", instance=path)(scope, receive, send)
                return
            unfit = json_body_error(body) if body and content_type == "application/json" else None
            if unfit is not None:
                await from_error(unfit, path)(scope, receive, send)
                return
            receive = _replay(body)
        bind_tenant(None)
        if is_public(path):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        try:
            principal = authenticate(headers, client[0] if client else None)
        except FunnelError as error:
            await from_error(error, path)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        bind_tenant(principal.tenant_id, principal.user_id)
        key = headers.get("idempotency-key")
        if method != "POST" or key is None:
            await self.app(scope, receive, send)
            return
        try:
            stored = idempotency.claim(principal, key, method, path, body)
        except FunnelError as error:
            await from_error(error, path)(scope, receive, send)
            return
        if stored is not None:
            replay = Response(stored.body, status_code=stored.status_code, media_type=stored.content_type,
                              headers={"Idempotent-Replayed": "true"})
            await replay(scope, receive, send)
            return
        await self._run_and_remember(scope, receive, send, principal, key)

    async def _run_and_remember(self, scope: Scope, receive: Receive, send: Send, principal, key: str) -> None:
        status, content_type, chunks = 500, "application/json", []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = Headers(raw=message.get("headers", [])).get("content-type", content_type)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            idempotency.complete(principal, key, status, b"".join(chunks), content_type)
