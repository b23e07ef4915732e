"""The community stats rollup in tests (funnel.community.stats)."""
from __future__ import annotations

from typing import Any

from funnel import db
from funnel.community import stats


def rollup(tenant_id: str, *, full: bool = False) -> dict[str, Any]:
    """The tenant's rollup; when the runtime's own 5-minute schedule is rolling it up at that moment, wait for it
    (its lock) and roll up again."""
    while (outcome := stats.rollup_tenant(tenant_id, full=full)) is None:
        with db.tenant_transaction(tenant_id) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('community.stats:' || "
                         "current_setting('app.tenant_id'), 0))")
    return outcome
