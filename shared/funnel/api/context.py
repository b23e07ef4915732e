"""Request context middleware: body limits, authentication, tenant context, idempotency.

The tenant context is established here, once, and carried on ``request.state``
(routes read it through ``deps.principal``) and on every log line.
"""
from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from funnel.api.problems import from_error, problem
from funnel.observability import bind_tenant
from funnel.platform import auth, idempotency
from funnel.platform.errors import FunnelError, Unauthorized
from funnel.settings import get_settings

# Routes anyone may call; everything else under /v1 needs a token or an API key.
PUBLIC_PATHS = {"/v1/auth/login", "/v1/auth/refresh", "/v1/auth/accept-invite", "/openapi.json", "/healthz",
                "/docs", "/docs/oauth2-redirect"}
BODY_METHODS = {"POST", "PUT", "PATCH"}
# Webhook senders (Stripe, SNS, plugins) authenticate by signature, checked by their routes.
PUBLIC_PREFIXES = ("/v1/webhooks/",)
ACCEPTED_BODY_TYPES = ("application/json", "multipart/form-data", "text/plain")


def client_ip(request: Request) -> str | None:
    # Behind API Gateway, Mangum puts requestContext.http.sourceIp into the ASGI client.
    return request.client.host if request.client else None


def is_public(request: Request) -> bool:
    path = request.url.path
    return path in PUBLIC_PATHS or not path.startswith("/v1/") or path.startswith(PUBLIC_PREFIXES)


def authenticate(request: Request):
    authorization = request.headers.get("authorization", "")
    api_key = request.headers.get("x-api-key")
    ip = client_ip(request)
    if authorization.lower().startswith("bearer "):
        return auth.authenticate_bearer(authorization[7:].strip(), ip)
    if api_key:
        return auth.authenticate_api_key(api_key.strip(), ip)
    raise Unauthorized("send Authorization: Bearer <token> or X-Api-Key")


async def request_context(request: Request, call_next) -> Response:
    settings = get_settings()
    path = request.url.path
    if request.method in BODY_METHODS:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
            return problem(413, f"the body exceeds {settings.max_body_bytes} bytes", instance=path)
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            return problem(413, f"the body exceeds {settings.max_body_bytes} bytes", instance=path)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if body and content_type not in ACCEPTED_BODY_TYPES:
            return problem(415, "send the body as application/json", instance=path)
    else:
        body = b""
    bind_tenant(None)
    if is_public(request):
        return await call_next(request)
    try:
        principal = await run_in_threadpool(authenticate, request)
    except FunnelError as error:
        return from_error(error, path)
    request.state.principal = principal
    bind_tenant(principal.tenant_id, principal.user_id)
    key = request.headers.get("idempotency-key")
    if request.method != "POST" or key is None:
        return await call_next(request)
    try:
        stored = await run_in_threadpool(idempotency.claim, principal, key, request.method, path, body)
    except FunnelError as error:
        return from_error(error, path)
    if stored is not None:
        return Response(stored.body, status_code=stored.status_code, media_type=stored.content_type,
                        headers={"Idempotent-Replayed": "true"})
    response = await call_next(request)
    chunks = [chunk async for chunk in response.body_iterator]
    content = b"".join(chunks)
    await run_in_threadpool(idempotency.complete, principal, key, response.status_code, content,
                            response.headers.get("content-type", "application/json"))
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(content, status_code=response.status_code, headers=headers)
