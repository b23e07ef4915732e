"""Waiting in tests for what the local runtime does in the background (a run, a task, a delivery)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], done: Callable[[T], bool], timeout: float, what: str,
               interval: float = 0.1) -> T:
    """``probe()`` every ``interval`` seconds until ``done`` holds for its answer, which is returned; after
    ``timeout`` seconds a TimeoutError naming ``what`` and the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if done(answer):
            return answer
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout} s: {answer}")
        time.sleep(interval)
