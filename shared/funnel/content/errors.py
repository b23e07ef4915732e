"""Pipeline error classes. Step Functions matches on the class *name*:
``TransientError`` (and the platform's ``LlmTransientError``) are retried with
backoff; everything else fails the step at once."""
from __future__ import annotations

from funnel.platform.errors import FunnelError


class TransientError(FunnelError):
    """Timeouts, 429, 5xx, throttling: a later attempt may succeed."""

    status, title, type_suffix = 502, "Upstream temporarily unavailable", "upstream-transient"


class PermanentError(FunnelError):
    """Validation, a missing site token, a 4xx from WordPress: retrying will not help."""

    status, title, type_suffix = 422, "Cannot be completed", "permanent"


class RunHalted(FunnelError):
    """The run was paused or cancelled: the pipeline stops before the next step."""

    status, title, type_suffix = 409, "Run halted", "run-halted"
