"""The local runtime's patches of moto's Step Functions interpreter keep AWS's semantics."""
from __future__ import annotations

from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, HeartbeatEndpoint

from funnel_dev import lambdas


def test_a_heartbeat_before_the_state_starts_waiting_is_accepted():
    """AWS accepts a heartbeat for the token of a state that has sent its message; moto refused one sent before
    the state set up its wait, and the browser worker then dropped a live message (the send pipeline hung)."""
    lambdas.install()
    endpoint = CallbackEndpoint(callback_id="token")
    assert endpoint.notify_heartbeat() is True
    waiting = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=60)
    assert endpoint.notify_heartbeat() is True
    assert isinstance(waiting, HeartbeatEndpoint)
