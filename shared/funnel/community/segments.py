"""Saved developer segments: a named definition (``kind`` + ``params``) whose members are computed when asked.

Kinds (README-stats.md):

- ``active_then_silent``: developers whose last action (``developer_stats.last_action_at``, as of the last rollup)
  falls in the ``active_days`` before the last ``silent_days``: active then, nothing since ("active before, silent
  for 30 days"). Latest first.
- ``most_engaged``: the ``top`` developers by activities in a period: the current calendar ``quarter`` or
  ``month`` in the segment's ``tz`` (an IANA zone, UTC by default), or the ``last_days`` up to now ("most engaged
  this quarter"). Most activities first, ties by developer id.

Merged and erased developers are never members. A member page's cursor is a position in that order.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from funnel.community import stats
from funnel.community import store_stats as store
from funnel.db import Connection, Row
from funnel.platform import audit
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.pagination import Page, decode_cursor, encode_cursor
from funnel.platform.principal import Principal

KINDS = ("active_then_silent", "most_engaged")
COUNT = re.compile(r"[0-9]{1,18}")  # a most-engaged cursor's activity count


# ---------------------------------------------------------------- rules (pure)

def silent_window(params: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    """[active_from, silent_from): the last action of an active-then-silent member is in it."""
    silent_from = now - timedelta(days=int(params["silent_days"]))
    return silent_from - timedelta(days=int(params["active_days"])), silent_from


def _first_of_quarter(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _months_later(day: date, months: int) -> date:
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, 1)


def engaged_period(params: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of a most-engaged segment's period: the calendar quarter or month holding ``now`` in the
    segment's zone (local midnights), or the ``days`` before now."""
    if params["period"] == "last_days":
        return now - timedelta(days=int(params["days"])), now
    zone = stats.zone_named(params.get("tz") or "UTC", ["body", "definition", "tz"])
    today = now.astimezone(zone).date()
    first = _first_of_quarter(today) if params["period"] == "quarter" else today.replace(day=1)
    following = _months_later(first, 3 if params["period"] == "quarter" else 1)
    return (datetime.combine(first, datetime.min.time(), zone).astimezone(UTC),
            datetime.combine(following, datetime.min.time(), zone).astimezone(UTC))


def clean_definition(definition: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, params) as stored; a zone that is not IANA is a 422 naming it."""
    kind = definition["kind"]
    params = {k: v for k, v in definition.items() if k != "kind" and v is not None}
    if kind == "most_engaged":
        if params["period"] == "last_days" and "days" not in params:
            raise ValidationFailed.at(["body", "definition", "days"], "required with the period last_days")
        if params["period"] != "last_days":
            params.pop("days", None)
        stats.zone_named(params.get("tz", "UTC"), ["body", "definition", "tz"])
    return kind, params


def member_position(cursor: str | None) -> tuple[str, UUID] | None:
    """A members cursor's (first value, developer id), checked before the segment is read: a crafted cursor is a
    422 naming ``cursor`` whatever the segment."""
    if not cursor:
        return None
    first, last_id = decode_cursor(cursor, 2)
    try:
        developer_id = UUID(last_id)
    except ValueError:
        raise _bad_cursor() from None
    if not COUNT.fullmatch(first):
        try:
            moment = datetime.fromisoformat(first)
        except ValueError:
            raise _bad_cursor() from None
        if moment.tzinfo is None:
            raise _bad_cursor()
    return first, developer_id


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed.at(["query", "cursor"], "not a cursor this list gave; pass `next_cursor` as it came, or "
                                                    "leave it out for the first page")


def _segment_position(cursor: str | None) -> tuple[datetime, UUID] | None:
    if not cursor:
        return None
    moment, last_id = decode_cursor(cursor, 2)
    try:
        at, position = datetime.fromisoformat(moment), UUID(last_id)
    except ValueError:
        raise _bad_cursor() from None
    if at.tzinfo is None:
        raise _bad_cursor()
    return at, position


# ---------------------------------------------------------------- service

def _conflict(exc: psycopg.errors.UniqueViolation) -> Conflict:
    return Conflict("a segment of this name exists")


def get_segment(conn: Connection, segment_id: UUID) -> Row:
    row = store.segment(conn, segment_id)
    if row is None:
        raise NotFound("segment not found")
    return row


def list_segments(conn: Connection, *, kind: str | None, cursor: str | None, limit: int) -> Page:
    rows = store.segments_page(conn, kind=kind, after=_segment_position(cursor), limit=limit)
    return Page.from_rows(rows, limit, lambda r: encode_cursor([r["created_at"].isoformat(), str(r["segment_id"])]))


def create_segment(conn: Connection, principal: Principal, body: dict[str, Any]) -> Row:
    kind, params = clean_definition(body["definition"])
    try:
        with conn.transaction():
            row = store.insert_segment(conn, {"name": body["name"], "description": body.get("description"),
                                              "kind": kind, "params": params, "created_by": principal.user_id})
    except psycopg.errors.UniqueViolation as exc:
        raise _conflict(exc) from exc
    audit.record(conn, principal, "community.segment.create", "segment", row["segment_id"],
                 {"name": row["name"], "kind": kind})
    return row


def update_segment(conn: Connection, principal: Principal, segment_id: UUID, changes: dict[str, Any]) -> Row:
    get_segment(conn, segment_id)
    if "name" in changes and changes["name"] is None:
        raise ValidationFailed.at(["body", "name"], "may not be null")
    if "definition" in changes:
        if changes["definition"] is None:
            raise ValidationFailed.at(["body", "definition"], "may not be null")
        changes["kind"], changes["params"] = clean_definition(changes.pop("definition"))
    try:
        with conn.transaction():
            row = store.update_segment(conn, segment_id, changes)
    except psycopg.errors.UniqueViolation as exc:
        raise _conflict(exc) from exc
    if row is None:
        raise NotFound("segment not found")
    audit.record(conn, principal, "community.segment.update", "segment", segment_id, {"fields": sorted(changes)})
    return row


def delete_segment(conn: Connection, principal: Principal, segment_id: UUID) -> None:
    if not store.delete_segment(conn, segment_id):
        raise NotFound("segment not found")
    audit.record(conn, principal, "community.segment.delete", "segment", segment_id)


def shown(row: Row) -> dict[str, Any]:
    """A stored segment as the API shows it: its kind and params as one ``definition``."""
    fields = {k: v for k, v in row.items() if k not in ("kind", "params")}
    return {**fields, "definition": {"kind": row["kind"], **row["params"]}}


def members(conn: Connection, segment_id: UUID, *, cursor: str | None, limit: int,
            now: datetime | None = None) -> Page:
    position = member_position(cursor)
    row = get_segment(conn, segment_id)
    now = now or datetime.now(UTC)
    params = row["params"]
    if row["kind"] == "active_then_silent":
        after_time: tuple[datetime, UUID] | None = None
        if position is not None:
            if COUNT.fullmatch(position[0]):
                raise _bad_cursor()
            after_time = (datetime.fromisoformat(position[0]), position[1])
        active_from, silent_from = silent_window(params, now)
        rows = store.silent_members(conn, active_from=active_from, silent_from=silent_from, after=after_time,
                                    limit=limit)
        return Page.from_rows(rows, limit, lambda r: encode_cursor([r["last_action_at"].isoformat(),
                                                                    str(r["developer_id"])]))
    after_count: tuple[int, UUID] | None = None
    if position is not None:
        if not COUNT.fullmatch(position[0]):
            raise _bad_cursor()
        after_count = (int(position[0]), position[1])
    start, end = engaged_period(params, now)
    store.without_jit(conn)
    rows = store.engaged_members(conn, start=start, end=end, top=int(params["top"]), after=after_count, limit=limit)
    return Page.from_rows(rows, limit, lambda r: encode_cursor([str(r["activities_in_period"]),
                                                                str(r["developer_id"])]))
