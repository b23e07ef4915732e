"""Community stats: the incremental rollup of ``developer_stats`` and ``campaign_stats``, the funnel (counts per
stage, conversion between consecutive stages, per campaign), activity time series, and the funnel map.

Decisions (README-stats.md):

- **Rollup** (``rollup_tenant``, scheduled every 5 minutes by CommunityStatsRollupFunction): triggers of
  t0006_community append what changed to ``community_stats_changes``; the rollup consumes those rows and
  recounts only the developers and campaigns they name, in one statement (store_stats.INCREMENTAL_ROLLUP), so the
  result is what a full recount (``store_stats.FULL_ROLLUP``) gives. A tenant's first rollup is a full recount.
- **Funnel**: an activity is in the stage its action maps to (the tenant's ``activity_funnel_map``, or the
  product's defaults while it has none). Per stage: its activities, the developers who did them, and ``reached``,
  the developers whose furthest stage in the range is this one or a later one; the conversion from one stage to
  the next is reached(next) / reached(this), so it is never above 1.
- **Time zone**: the product keeps no time zone per tenant (``system_settings`` has none), so the series take a
  ``tz`` query parameter, an IANA zone, UTC by default; buckets are local dates (ISO weeks from Monday).
"""
from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, available_timezones

from funnel import db
from funnel.community import store_stats as store
from funnel.db import Connection, Row
from funnel.observability import bind_tenant, count, logger
from funnel.platform import audit
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal

UNITS = ("day", "week", "month")
SERIES_BY = ("total", "action", "stage")
MAX_BUCKETS = 1000
DEFAULT_RANGE = timedelta(days=30)
RATE_PLACES = Decimal("0.0001")
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory", "leap-seconds.list", "leapseconds", "tzdata.zi"})


# ---------------------------------------------------------------- rules (pure)

@lru_cache(maxsize=1)  # the tz database is listed once per process
def _zone_names() -> frozenset[str]:
    """The IANA names of the tz database, without what the system's copy adds (``localtime``, ``posixrules``,
    the ``posix/`` and ``right/`` trees), which PostgreSQL's own copy may not know."""
    return frozenset(name for name in available_timezones()
                     if name not in NOT_ZONES and not name.startswith(("posix/", "right/"))) | {"UTC"}


def zone_named(name: str, loc: list[str | int]) -> ZoneInfo:
    """An IANA zone (``Asia/Tokyo``); anything else (``localtime``, ``+09:00``, a path) is a 422 at ``loc``."""
    if name not in _zone_names():
        raise ValidationFailed.at(loc, "not an IANA time zone (e.g. Asia/Tokyo, UTC)")
    return ZoneInfo(name)


def time_range(start: datetime | None, end: datetime | None, *, now: datetime) -> tuple[datetime, datetime]:
    """[start, end): ``to`` defaults to now, ``from`` to 30 days before ``to``; ``to`` must be after ``from``."""
    end = end or now
    start = start or end - DEFAULT_RANGE
    if end <= start:
        raise ValidationFailed.at(["query", "to"], "`to` is after `from`")
    return start, end


def _bucket_of(moment: date, unit: str) -> date:
    if unit == "day":
        return moment
    if unit == "week":
        return moment - timedelta(days=moment.weekday())
    return moment.replace(day=1)


def _next_bucket(bucket: date, unit: str) -> date:
    if unit == "day":
        return bucket + timedelta(days=1)
    if unit == "week":
        return bucket + timedelta(days=7)
    return date(bucket.year + bucket.month // 12, bucket.month % 12 + 1, 1)


def bucket_starts(start: datetime, end: datetime, unit: str, zone: ZoneInfo) -> list[date]:
    """The local dates (in ``zone``) of the buckets [start, end) touches: each day, each ISO week's Monday or each
    month's first day. More than MAX_BUCKETS is a 422 naming ``interval``."""
    if unit not in UNITS:
        raise ValidationFailed.at(["query", "interval"], f"one of {', '.join(UNITS)}")
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    bucket = _bucket_of(start.astimezone(zone).date(), unit)
    found: list[date] = []
    while bucket <= last:
        found.append(bucket)
        if len(found) > MAX_BUCKETS:
            raise ValidationFailed.at(["query", "interval"], f"more than {MAX_BUCKETS} buckets: choose a longer "
                                                             "interval or a shorter range")
        bucket = _next_bucket(bucket, unit)
    return found


def rate(numerator: int, denominator: int) -> Decimal | None:
    """numerator / denominator with 4 decimals (half-even); None without a denominator."""
    if denominator <= 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(RATE_PLACES, ROUND_HALF_EVEN)


def funnel_report(rows: list[Row]) -> list[dict[str, Any]]:
    """The stages in order with the conversion from the previous one (reached(this) / reached(previous)); the
    first stage has none."""
    stages: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    for row in sorted(rows, key=lambda r: r["order_no"]):
        stage = {"stage_key": row["stage_key"], "order_no": row["order_no"], "title": row["title"],
                 "activities": int(row["activities"]), "developers": int(row["developers"]),
                 "reached": int(row["reached"]),
                 "conversion_from_previous": rate(int(row["reached"]), previous["reached"]) if previous else None}
        stages.append(stage)
        previous = stage
    return stages


def dense_series(rows: list[Row], buckets: list[date], by: str) -> list[dict[str, Any]]:
    """One series per key (one for by="total"), a point for every bucket (zero where nothing happened), keys in
    order of their total activities (then name)."""
    keys: dict[str | None, dict[date, Row]] = {}
    if by == "total":
        keys[None] = {}
    for row in rows:
        keys.setdefault(row["key"], {})[row["bucket"]] = row
    ordered = sorted(keys.items(), key=lambda kv: (-sum(r["activities"] for r in kv[1].values()), kv[0] or ""))
    return [{"key": key, "points": [{"start": b, "activities": int(found[b]["activities"]) if b in found else 0,
                                     "developers": int(found[b]["developers"]) if b in found else 0}
                                    for b in buckets]}
            for key, found in ordered]


def check_mappings(mappings: list[tuple[str, str]], stage_keys: set[str]) -> None:
    seen: set[str] = set()
    for index, (action, stage_key) in enumerate(mappings):
        if stage_key not in stage_keys:
            raise ValidationFailed.at(["body", "mappings", index, "stage_key"],
                                      f"not a funnel stage ({', '.join(sorted(stage_keys))})")
        if action in seen:
            raise ValidationFailed.at(["body", "mappings", index, "action"], "this action is mapped twice")
        seen.add(action)


# ---------------------------------------------------------------- rollup

ADMIN_ROLLUP_WAIT_SECONDS = 20.0  # a rollup takes well under a second per thousand changes

def rollup_tenant(tenant_id: str, *, full: bool = False, wait_seconds: float = 0.0) -> dict[str, Any] | None:
    """Roll the tenant's stats up (a full recount on its first rollup or when asked); None when another rollup of
    the tenant still holds the lock after ``wait_seconds`` (the schedule does not wait: the running one counts
    what it can, the next firing the rest)."""
    started = time.monotonic()
    with db.tenant_transaction(tenant_id) as conn:
        while not store.try_lock_rollup(conn):
            if time.monotonic() - started >= wait_seconds:
                return None
            time.sleep(0.1)
        store.without_jit(conn)
        store.mark_rollup(conn)
        was_full = full or store.rollup_state(conn) is None or store.full_rollup_due(conn)
        outcome = dict(store.rollup_full(conn) if was_full else store.rollup_incremental(conn))
        outcome.update(was_full=was_full, duration_ms=int((time.monotonic() - started) * 1000))
        state = store.save_rollup_state(conn, outcome)
    count("CommunityStatsChangesRolledUp", outcome["changes"], tenant_id=tenant_id)
    logger.info("community stats rolled up", extra={"changes": outcome["changes"], "full": was_full,
                                                     "duration_ms": outcome["duration_ms"]})
    return {**dict(state), "relinked": bool(outcome["relinked"])}


def rollup_all(tenant_ids: list[str], deadline: float) -> dict[str, int]:
    """Every tenant in turn until ``deadline`` (time.monotonic); one failing tenant does not stop the others, and
    one not reached keeps its changes for the next run."""
    done = {"tenants": 0, "changes": 0, "skipped_tenants": 0, "failed_tenants": 0}
    for tenant_id in tenant_ids:
        if time.monotonic() >= deadline:
            done["skipped_tenants"] += 1
            continue
        bind_tenant(tenant_id)
        try:
            outcome = rollup_tenant(tenant_id)
        except Exception:  # one broken tenant database must not stop the others
            done["failed_tenants"] += 1
            logger.exception("community stats rollup failed for a tenant")
            continue
        if outcome is None:
            done["skipped_tenants"] += 1
        else:
            done["tenants"] += 1
            done["changes"] += int(outcome["changes"])
    bind_tenant(None)
    return done


def rollup_status(conn: Connection) -> dict[str, Any]:
    state = store.rollup_state(conn)
    return {"last": dict(state) if state else None, "pending_changes": store.pending_changes(conn)}


def rollup_now(principal: Principal, *, full: bool) -> dict[str, Any]:
    """An admin's rollup now (after a large import, say); the same as the schedule's, except that it waits for one
    already running: that one may have begun before the changes the admin wants counted."""
    outcome = rollup_tenant(principal.tenant_id, full=full, wait_seconds=ADMIN_ROLLUP_WAIT_SECONDS)
    with db.tenant_transaction(principal.tenant_id) as conn:
        audit.record(conn, principal, "community.stats.rollup", "community_stats", principal.tenant_id,
                     {"full": full, "ran": outcome is not None})
        return {**rollup_status(conn), "ran": outcome is not None}


def developer_stats(conn: Connection, developer_id: UUID) -> dict[str, Any]:
    """The developer's rolled-up figures (zeros before its first rollup or without activities)."""
    row = store.developer_stats(conn, developer_id)
    if row is None:
        if not store.developer_exists(conn, developer_id):
            raise NotFound("developer not found")
        return {"developer_id": developer_id, "last_action_at": None, "total_actions": 0, "clicks": 0,
                "attends": 0, "posts": 0, "stars": 0, "updated_at": None}
    return dict(row)


def campaign_stats(conn: Connection, campaign_id: UUID) -> dict[str, Any]:
    row = store.campaign_stats(conn, campaign_id)
    if row is None:
        if not store.campaign_exists(conn, campaign_id):
            raise NotFound("campaign not found")
        raise NotFound("the campaign has no stats yet: they come with the next rollup")
    return dict(row)


# ---------------------------------------------------------------- funnel, series, map

def _stage_keys(conn: Connection) -> set[str]:
    return {r["stage_key"] for r in store.funnel_stages(conn)}


def funnel(conn: Connection, *, start: datetime | None, end: datetime | None,
           campaign_id: UUID | None) -> dict[str, Any]:
    start, end = time_range(start, end, now=datetime.now(UTC))
    if campaign_id is not None and not store.campaign_exists(conn, campaign_id):
        raise ValidationFailed.at(["query", "campaign_id"], "not found in this workspace", "reference")
    store.without_jit(conn)
    rows = store.funnel_counts(conn, start=start, end=end, campaign_id=campaign_id)
    return {"from_": start, "to": end, "campaign_id": campaign_id, "stages": funnel_report(rows)}


def series(conn: Connection, *, start: datetime | None, end: datetime | None, interval: str, tz: str, by: str,
           action: str | None, stage: str | None) -> dict[str, Any]:
    zone = zone_named(tz, ["query", "tz"])
    start, end = time_range(start, end, now=datetime.now(UTC))
    buckets = bucket_starts(start, end, interval, zone)
    if stage is not None and stage not in _stage_keys(conn):
        raise ValidationFailed.at(["query", "stage"], f"not a funnel stage ({', '.join(sorted(_stage_keys(conn)))})")
    store.without_jit(conn)
    rows = store.activity_series(conn, start=start, end=end, unit=interval, zone=tz, by=by, action=action,
                                 stage=stage)
    return {"from_": start, "to": end, "interval": interval, "tz": tz, "by": by, "action": action, "stage": stage,
            "buckets": buckets, "series": dense_series(rows, buckets, by)}


def funnel_map(conn: Connection) -> dict[str, Any]:
    return {"stages": [dict(r) for r in store.funnel_stages(conn)],
            "mappings": [dict(r) for r in store.funnel_map(conn)], "is_default": not store.has_own_funnel_map(conn)}


def save_funnel_map(conn: Connection, principal: Principal, mappings: list[tuple[str, str]]) -> dict[str, Any]:
    """The tenant's whole map at once; an empty one goes back to the product's defaults."""
    check_mappings(mappings, _stage_keys(conn))
    store.replace_funnel_map(conn, mappings)
    audit.record(conn, principal, "community.funnel_map.save", "activity_funnel_map", principal.tenant_id,
                 {"mappings": len(mappings)})
    return funnel_map(conn)
