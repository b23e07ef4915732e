"""Workspace export (issue #18 item 5): being built."""
from __future__ import annotations


def run_export(tenant_id: str, run_id: str) -> None:
    raise NotImplementedError("workspace export is being built")
