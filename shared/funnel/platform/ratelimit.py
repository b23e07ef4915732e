"""Fixed-window counters in the control DB (Lambdas share no memory): ``count`` what a key has used in the
current window of ``window_seconds``, ``hit`` to use one more. The caller decides the limit."""
from __future__ import annotations

from funnel import db
from funnel.platform import store_requests


def count(key: str, window_seconds: int) -> int:
    with db.control_transaction() as conn:
        return store_requests.window_count(conn, key, window_seconds)


def hit(key: str, window_seconds: int) -> int:
    with db.control_transaction() as conn:
        hits = store_requests.add_hit(conn, key, window_seconds)
        # Old windows are useless; prune a few on the way.
        store_requests.prune_old_windows(conn)
    return hits
