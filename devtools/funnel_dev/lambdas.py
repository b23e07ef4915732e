"""In-process Lambda dispatch and time compression for moto's Step Functions interpreter.

moto 5.2.5 sends every Lambda call (Step Functions ``lambda:invoke`` and plain
function-ARN Tasks, ``lambda.invoke`` from boto3) through
``LambdaSimpleBackend.invoke``. Replacing that one method runs the call as a
plain Python function in this process, so a state machine's Task reaches the
same handler the template declares. Retry intervals (``time.sleep`` in the
retrier) and Wait states (``Event.wait``) are scaled by ``time_scale``: 0 makes
a 15-minute backoff take no wall time in tests.

The registry is process-wide because moto's backends are: only one
``LocalRuntime`` runs in a process at a time.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

Handler = Callable[[Any, Any], Any]

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

_handlers: dict[str, Handler] = {}
_handlers_lock = threading.Lock()
_time_scale = {"value": 1.0}
_installed = {"done": False}


class UnknownFunction(KeyError):
    """No handler is registered under this function name (Step Functions reports it as the Task's error)."""


class LambdaContext:
    """The attributes handlers and Powertools read from Lambda's context object."""

    def __init__(self, function_name: str, timeout_seconds: float = 900.0, memory_mb: int = 1024):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn(function_name)
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_arn(function_name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"


def function_name_of(reference: str) -> str:
    """``name``, ``name:qualifier``, an ARN or a qualified ARN -> ``name``."""
    if reference.startswith("arn:"):
        return reference.split(":")[6]
    return reference.split(":")[0]


def register(names: list[str], handler: Handler) -> None:
    with _handlers_lock:
        for name in names:
            _handlers[name] = handler


def unregister_all() -> None:
    with _handlers_lock:
        _handlers.clear()


def registered_names() -> list[str]:
    with _handlers_lock:
        return sorted(_handlers)


def call_handler(handler: Handler, event: Any, context: Any) -> Any:
    """Run a handler the way Lambda does, in a thread that has an event loop.

    Lambda's Python runtime calls handlers on its main thread, where
    ``asyncio.get_event_loop()`` works (Mangum relies on it); the gateway,
    pollers and moto call from worker threads that have none. A loop made here
    is closed afterwards, or every request would leak its sockets.
    """
    _label_log_lines(context)
    try:
        asyncio.get_event_loop_policy().get_event_loop()
        has_loop = True
    except RuntimeError:
        has_loop = False
    if has_loop:
        return handler(event, context)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return handler(event, context)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _label_log_lines(context: Any) -> None:
    """Lambda runs one function per process; here all share one, and Powertools keeps the Lambda context in
    its logger's global keys, so a thread's lines would show whichever function started last. This thread's
    context-local keys win over the global ones."""
    from funnel.observability import logger

    if getattr(context, "function_name", None):
        logger.thread_safe_append_keys(function_name=context.function_name,
                                       function_arn=context.invoked_function_arn,
                                       function_request_id=context.aws_request_id,
                                       function_memory_size=context.memory_limit_in_mb)


def invoke(reference: str, event: Any) -> Any:
    """Call the handler registered for a function name or ARN, like a synchronous Lambda invoke."""
    name = function_name_of(reference)
    with _handlers_lock:
        handler = _handlers.get(name)
    if handler is None:
        raise UnknownFunction(f"no function {name!r} in the loaded templates")
    return handler(event, LambdaContext(name))


def _moto_invoke(self, function_name, qualifier, body, headers, response_headers):  # noqa: ARG001 (moto's signature)
    event = json.loads(body) if body else {}
    try:
        result = invoke(function_name, event)
        return json.dumps(result).encode()
    except Exception as exc:  # Lambda's unhandled-error shape: Step Functions uses errorType as the error name
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc),
                           "stackTrace": traceback.format_tb(exc.__traceback__)}).encode()


class _ScaledTime:
    """Stands in for the ``time`` module inside moto's retrier: only ``sleep`` is scaled."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds * _time_scale["value"])


def _scaled_wait_interval(self, env, wait_seconds) -> None:  # noqa: ARG001 (moto's signature)
    if wait_seconds > 0:
        env.program_state_event.wait(wait_seconds * _time_scale["value"])  # still wakes up on StopExecution


def set_time_scale(scale: float) -> None:
    _time_scale["value"] = max(0.0, float(scale))


def time_scale() -> float:
    return _time_scale["value"]


def install(scale: float = 1.0) -> None:
    """Patch moto once per process (idempotent); ``scale`` may change between runtimes."""
    set_time_scale(scale)
    if _installed["done"]:
        return
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

    LambdaSimpleBackend.invoke = _moto_invoke
    retrier_decl.time = _ScaledTime()
    WaitFunction._wait_interval = _scaled_wait_interval
    CallbackEndpoint.notify_heartbeat = _heartbeat_of_a_registered_token
    _installed["done"] = True


def _heartbeat_of_a_registered_token(endpoint) -> bool:
    """AWS accepts a heartbeat for any task token of a waiting state. moto registers the token before the state
    sends its message but sets up the heartbeat endpoint only once it starts waiting, and refuses a heartbeat in
    between (InvalidToken): a local worker fast enough to heartbeat in that gap dropped a live message and the
    send pipeline waited for it until its timeout. A heartbeat before the wait begins only says the worker is
    alive, which the wait (starting now) already assumes."""
    heartbeat = endpoint._heartbeat_endpoint
    if heartbeat is not None:
        heartbeat.notify()
    return True
