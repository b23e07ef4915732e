"""Domain errors. The API turns them into RFC 9457 problem responses; other
callers (CLI, workers) read their message. Every area raises these."""
from __future__ import annotations


class FunnelError(Exception):
    status = 400
    title = "Bad request"
    type_suffix = "bad-request"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ValidationFailed(FunnelError):
    status, title, type_suffix = 422, "Validation failed", "validation"

    @classmethod
    def at(cls, loc: list[str | int], msg: str, type_: str = "value_error") -> ValidationFailed:
        """A 422 naming the one field at fault, in the ``errors`` shape of request validation
        (``loc`` like ``["query", "cursor"]`` or ``["body", "metadata", "a"]``)."""
        return cls(f"{'.'.join(map(str, loc))}: {msg}", errors=[{"loc": loc, "msg": msg, "type": type_}])


class NotFound(FunnelError):
    status, title, type_suffix = 404, "Not found", "not-found"


class Conflict(FunnelError):
    status, title, type_suffix = 409, "Conflict", "conflict"


class Unauthorized(FunnelError):
    status, title, type_suffix = 401, "Unauthorized", "unauthorized"


class Forbidden(FunnelError):
    status, title, type_suffix = 403, "Forbidden", "forbidden"


class WorkspaceUnverified(Forbidden):
    """The workspace's e-mail address is not verified yet: it signs in and configures, but sends nothing."""
    status, title, type_suffix = 403, "Workspace not verified", "workspace-unverified"


# The 403 of a route that sends (``problems(403, forbidden=SENDING_FORBIDDEN)``): a role below member, or the gate.
SENDING_FORBIDDEN = ("The caller's role is below member, or the workspace's e-mail address is not verified yet "
                     "(`type` ends in `workspace-unverified`): it sends nothing until the owner opens the link "
                     "mailed at sign-up")


class RateLimited(FunnelError):
    status, title, type_suffix = 429, "Too many requests", "rate-limited"

    def __init__(self, detail: str, *, retry_after_seconds: int = 60, **extra):
        super().__init__(detail, **extra)
        self.retry_after_seconds = retry_after_seconds  # the API's Retry-After


class PaymentRequired(FunnelError):
    status, title, type_suffix = 402, "Payment required", "payment-required"


class ServiceUnavailable(FunnelError):
    status, title, type_suffix = 503, "Service unavailable", "unavailable"
