"""Attempt windows in the control DB (Lambdas share no memory).

``reserve`` counts one attempt against every key before the attempt is made, each with a single upsert that
returns the new count, so concurrent attempts cannot all read a count below the limit and all go ahead
(12 concurrent wrong passwords against a limit of 5 check at most 5). An attempt over any key's limit is not
counted (its transaction rolls back) and raises ``RateLimited`` with the seconds left until the window that
refused it ends. ``release`` takes an attempt back when it should not count (a successful sign-in).
A window starts at its key's first counted attempt and lasts ``window_seconds``.
"""
from __future__ import annotations

from dataclasses import dataclass

from funnel import db
from funnel.platform import store_requests
from funnel.platform.errors import RateLimited


@dataclass(frozen=True)
class Reservation:
    """The attempt counted in each key's window: key -> the start of the window it was counted in."""

    windows: dict[str, object]


def reserve(limits: dict[str, int], window_seconds: int, refusal: str) -> Reservation:
    """Count one attempt against each key of ``limits`` (key -> most attempts per window); over any limit,
    count none and raise ``RateLimited(refusal)`` with ``retry_after_seconds``."""
    with db.control_transaction() as conn:
        windows, waits = {}, []
        for key, limit in limits.items():  # callers name keys in the same order, so their row locks cannot deadlock
            hit = store_requests.add_hit(conn, key, window_seconds)
            windows[key] = hit["window_start"]
            if hit["count"] > limit:
                waits.append(max(1, int(hit["seconds_left"])))
        if waits:
            # Raised inside the transaction: it rolls back, so a refused attempt counts against no key.
            raise RateLimited(refusal, retry_after_seconds=max(waits))
        # Old windows are useless; prune a few on the way.
        store_requests.prune_old_windows(conn)
    return Reservation(windows)


def release(reservation: Reservation) -> None:
    """Take back the attempt ``reserve`` counted."""
    with db.control_transaction() as conn:
        for key, window_start in reservation.windows.items():
            store_requests.remove_hit(conn, key, window_start)
