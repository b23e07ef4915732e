"""Workspace deletion (issue #18 item 6): being built."""
from __future__ import annotations

from funnel.db import Row


def purge_due() -> list[Row]:
    raise NotImplementedError("workspace deletion is being built")
