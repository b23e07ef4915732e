"""Content cron schedules: a row per schedule plus its EventBridge Scheduler schedule.

``cron_expression`` is a standard 5-field cron in the schedule's time zone
(default Asia/Tokyo). ``next_run_at`` is computed with croniter on zone-aware
times, so DST gaps/overlaps and short months are handled the way croniter does.
The EventBridge schedule (group ``settings.scheduler_group``, name
``content-<schedule id>``) uses the equivalent 6-field ``cron()`` with the same
``ScheduleExpressionTimezone`` and targets the content schedule function with
``{"tenant_id", "schedule_id", "scheduled_time": "<aws.scheduler.scheduled-time>"}``.

A firing inserts a ``schedule_jobs`` row unique on (schedule_id, scheduled_for);
a duplicate firing of the same occurrence finds the row and starts nothing.
"""
from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from funnel import db
from funnel.content import service
from funnel.db import Connection
from funnel.platform import audit, aws
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.pagination import keyset_page
from funnel.platform.principal import Principal
from funnel.settings import get_settings

if TYPE_CHECKING:
    from croniter import croniter


@lru_cache(maxsize=1)
def _croniter() -> type[croniter]:
    """croniter, imported on first use: only schedule writes and firings compute cron times."""
    from croniter import croniter

    return croniter


log = logging.getLogger("funnel.content.schedules")
SCHEDULE_COLUMNS = ("id, user_id, site_id, product_id, cron_expression, timezone, articles_per_run, publish_mode, "
                    "is_active, next_run_at, scheduler_name, created_at, updated_at")
DOW_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
_FIELD = re.compile(r"^[\d*/,\-A-Za-z]+$")


def validate(cron_expression: str, zone: str) -> None:
    fields = cron_expression.split()
    if len(fields) != 5 or not all(_FIELD.match(f) for f in fields):
        raise ValidationFailed(f"cron_expression must have 5 fields (minute hour day month weekday): "
                               f"{cron_expression!r}")
    if not _croniter().is_valid(cron_expression):
        raise ValidationFailed(f"invalid cron expression {cron_expression!r}")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"unknown time zone {zone!r}") from exc
    aws_expression(cron_expression)


def next_run_at(cron_expression: str, zone: str, after: datetime | None = None) -> datetime:
    """The first occurrence strictly after ``after`` (UTC-aware result)."""
    after = after or datetime.now(UTC)
    local = after.astimezone(ZoneInfo(zone))
    return _croniter()(cron_expression, local).get_next(datetime).astimezone(UTC)


def latest_occurrence(cron_expression: str, zone: str, at: datetime | None = None) -> datetime:
    """The most recent occurrence at or before ``at``: what a firing without a scheduled time stands for."""
    at = (at or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=1)
    return _croniter()(cron_expression, at.astimezone(ZoneInfo(zone))).get_prev(datetime).astimezone(UTC)


def _aws_dow(field: str) -> str:
    def name(match: re.Match) -> str:
        return DOW_NAMES[int(match.group(0))]
    if "/" in field:
        raise ValidationFailed("step values in the weekday field are not supported; list the days instead")
    return re.sub(r"\d", name, field)


def aws_expression(cron_expression: str) -> str:
    """Standard 5-field cron -> EventBridge Scheduler ``cron(min hour dom month dow year)``."""
    minute, hour, dom, month, dow = cron_expression.split()
    if dom != "*" and dow != "*":
        raise ValidationFailed("a cron expression may restrict the day of the month or the weekday, not both")
    if dow == "*":
        return f"cron({minute} {hour} {dom} {month} ? *)"
    return f"cron({minute} {hour} ? {month} {_aws_dow(dow)} *)"


# ---------------------------------------------------------------- EventBridge Scheduler
def _scheduler():
    return aws.client("scheduler")


def scheduler_name(schedule_id: str) -> str:
    return f"content-{schedule_id}"


def _schedule_request(tenant_id: str, row: dict) -> dict:
    settings = get_settings()
    if not settings.content_schedule_target_arn:
        raise ValidationFailed("content schedules are not configured (FUNNEL_CONTENT_SCHEDULE_TARGET_ARN)")
    payload = {"tenant_id": tenant_id, "schedule_id": str(row["id"]),
               "scheduled_time": "<aws.scheduler.scheduled-time>"}
    return {"Name": scheduler_name(str(row["id"])), "GroupName": settings.scheduler_group,
            "ScheduleExpression": aws_expression(row["cron_expression"]),
            "ScheduleExpressionTimezone": row["timezone"], "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED" if row["is_active"] else "DISABLED",
            "Description": f"Funnel content schedule {row['id']} of tenant {tenant_id}",
            "Target": {"Arn": settings.content_schedule_target_arn, "RoleArn": settings.scheduler_role_arn,
                       "Input": json.dumps(payload), "RetryPolicy": {"MaximumRetryAttempts": 3}}}


def _put_schedule(tenant_id: str, row: dict, create: bool) -> None:
    client = _scheduler()
    request = _schedule_request(tenant_id, row)
    if create:
        client.create_schedule(**request)
    else:
        client.update_schedule(**request)


def _delete_schedule(schedule_id: str) -> None:
    client = _scheduler()
    try:
        client.delete_schedule(Name=scheduler_name(schedule_id), GroupName=get_settings().scheduler_group)
    except client.exceptions.ResourceNotFoundException:
        pass


# ---------------------------------------------------------------- CRUD
def _check_refs(conn: Connection, site_id: str, product_id: str) -> None:
    service.get_site(conn, site_id)
    service.get_product(conn, product_id)


def create_schedule(principal: Principal, fields: dict) -> dict:
    validate(fields["cron_expression"], fields["timezone"])
    fields["site_id"], fields["product_id"] = str(fields["site_id"]), str(fields["product_id"])
    with db.tenant_transaction(principal.tenant_id) as conn:
        _check_refs(conn, fields["site_id"], fields["product_id"])
        fields["next_run_at"] = next_run_at(fields["cron_expression"], fields["timezone"]) \
            if fields.get("is_active", True) else None
        columns = ["user_id", *fields]
        row = conn.execute(f"INSERT INTO schedules ({', '.join(columns)}) VALUES "
                           f"({', '.join(['%s'] * len(columns))}) RETURNING {SCHEDULE_COLUMNS}",
                           (service._user(principal), *fields.values())).fetchone()
        row = conn.execute(f"UPDATE schedules SET scheduler_name = %s WHERE id = %s RETURNING {SCHEDULE_COLUMNS}",
                           (scheduler_name(str(row["id"])), row["id"])).fetchone()
        audit.record(conn, principal, "schedule.create", "schedule", row["id"],
                     {"cron": row["cron_expression"], "timezone": row["timezone"]})
        _put_schedule(principal.tenant_id, row, create=True)  # a failure rolls the row back
    return row


def update_schedule(principal: Principal, schedule_id: str, changes: dict) -> dict:
    with db.tenant_transaction(principal.tenant_id) as conn:
        current = conn.execute(f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = %s FOR UPDATE",
                               (schedule_id,)).fetchone()
        if current is None:
            raise NotFound("schedule not found")
        merged = {**current, **changes}
        validate(merged["cron_expression"], merged["timezone"])
        for key in ("site_id", "product_id"):
            if key in changes:
                changes[key] = str(changes[key])
        _check_refs(conn, str(merged["site_id"]), str(merged["product_id"]))
        changes["next_run_at"] = next_run_at(merged["cron_expression"], merged["timezone"]) \
            if merged["is_active"] else None
        row = service._update(conn, "schedules", SCHEDULE_COLUMNS, schedule_id, changes, "schedule")
        audit.record(conn, principal, "schedule.update", "schedule", schedule_id, {"fields": sorted(changes)})
        _put_schedule(principal.tenant_id, row, create=False)
    return row


def delete_schedule(principal: Principal, schedule_id: str) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        if conn.execute("DELETE FROM schedules WHERE id = %s RETURNING id", (schedule_id,)).fetchone() is None:
            raise NotFound("schedule not found")
        audit.record(conn, principal, "schedule.delete", "schedule", schedule_id)
        _delete_schedule(schedule_id)


def get_schedule(conn: Connection, schedule_id: str) -> dict:
    return service._get(conn, "schedules", SCHEDULE_COLUMNS, schedule_id, "schedule")


def list_schedules(conn: Connection, cursor: str | None, limit: int):
    return keyset_page(conn, table="schedules", columns=SCHEDULE_COLUMNS, cursor=cursor, limit=limit)


def list_jobs(conn: Connection, schedule_id: str) -> list[dict]:
    get_schedule(conn, schedule_id)
    return conn.execute("SELECT id, schedule_id, scheduled_for, run_id, status, started_at, completed_at, "
                        "articles_generated, error_message, created_at FROM schedule_jobs WHERE schedule_id = %s "
                        "ORDER BY scheduled_for DESC LIMIT 100", (schedule_id,)).fetchall()


# ---------------------------------------------------------------- firing
def _scheduled_for(value, row: dict) -> datetime:
    if isinstance(value, str) and not value.startswith("<"):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            pass
    return latest_occurrence(row["cron_expression"], row["timezone"])


def fire(tenant_id: str, schedule_id: str, scheduled_time=None) -> dict:
    """One firing: a schedule_jobs row and a run, at most once per scheduled time."""
    try:
        return _fire(tenant_id, schedule_id, scheduled_time)
    except NotFound:  # the tenant was deleted and its schedule outlived it
        log.warning("content schedule %s fired for unknown tenant %s: ignored", schedule_id, tenant_id)
        return {"status": "ignored"}


def _fire(tenant_id: str, schedule_id: str, scheduled_time) -> dict:
    with db.tenant_transaction(tenant_id) as conn:
        row = conn.execute(f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = %s", (schedule_id,)).fetchone()
        if row is None or not row["is_active"]:
            log.warning("schedule %s of tenant %s is gone or inactive: firing ignored", schedule_id, tenant_id)
            return {"status": "ignored"}
        scheduled_for = _scheduled_for(scheduled_time, row)
        job = conn.execute("INSERT INTO schedule_jobs (schedule_id, scheduled_for, status) VALUES (%s, %s, 'queued') "
                           "ON CONFLICT (schedule_id, scheduled_for) DO NOTHING RETURNING id",
                           (schedule_id, scheduled_for)).fetchone()
        if job is None:
            return {"status": "duplicate", "scheduled_for": scheduled_for.isoformat()}
        conn.execute("UPDATE schedules SET next_run_at = %s WHERE id = %s",
                     (next_run_at(row["cron_expression"], row["timezone"]), schedule_id))
        try:
            with conn.transaction():
                run = service.create_pipeline_run(conn, f"schedule:{schedule_id}", str(row["product_id"]),
                                                  articles_count=row["articles_per_run"],
                                                  publish_mode=row["publish_mode"], schedule_job_id=str(job["id"]))
        except Exception as exc:  # e.g. the site lost its token: the job records why nothing ran
            conn.execute("UPDATE schedule_jobs SET status = 'failed', completed_at = now(), error_message = %s "
                         "WHERE id = %s", (str(exc)[:2000], job["id"]))
            return {"status": "failed", "job_id": str(job["id"]), "error": str(exc)}
        conn.execute("UPDATE schedule_jobs SET run_id = %s, status = 'running', started_at = now() WHERE id = %s",
                     (run["id"], job["id"]))
    service.start_execution(tenant_id, str(run["id"]))
    return {"status": "started", "job_id": str(job["id"]), "run_id": str(run["id"]),
            "scheduled_for": scheduled_for.isoformat()}
