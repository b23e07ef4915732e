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
SQL is in ``store_schedules``.
"""
from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from funnel import db
from funnel.content import generation, service, store_schedules
from funnel.content.models import ContentSchedule, ScheduleJobList
from funnel.db import Connection, Row
from funnel.platform import audit, aws
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.pagination import Page
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
    try:
        next_run_at(cron_expression, zone)
    except ValueError as exc:  # croniter's CroniterBadDateError: a day that never comes, as 0 9 31 2 * (Feb 31)
        raise ValidationFailed.at(["body", "cron_expression"], f"{cron_expression!r} names no date that exists "
                                                               f"(such as 31 February): it would never run") from exc


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


def _schedule_request(tenant_id: str, row: Row) -> dict[str, Any]:
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


def _put_schedule(tenant_id: str, row: Row, create: bool) -> None:
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


def _next_run_or_none(cron_expression: str, zone: str, is_active: bool) -> datetime | None:
    """An inactive schedule has no next run."""
    return next_run_at(cron_expression, zone) if is_active else None


def create_schedule(principal: Principal, fields: dict[str, Any]) -> ContentSchedule:
    validate(fields["cron_expression"], fields["timezone"])
    fields["site_id"], fields["product_id"] = str(fields["site_id"]), str(fields["product_id"])
    with db.tenant_transaction(principal.tenant_id) as conn:
        _check_refs(conn, fields["site_id"], fields["product_id"])
        fields["next_run_at"] = _next_run_or_none(fields["cron_expression"], fields["timezone"],
                                                  fields.get("is_active", True))
        row = store_schedules.insert_schedule(conn, {"user_id": service.user_id_of(principal), **fields})
        row = store_schedules.set_scheduler_name(conn, str(row["id"]), scheduler_name(str(row["id"])))
        audit.record(conn, principal, "schedule.create", "schedule", row["id"],
                     {"cron": row["cron_expression"], "timezone": row["timezone"]})
        _put_schedule(principal.tenant_id, row, create=True)  # a failure rolls the row back
    return ContentSchedule.model_validate(row)


def update_schedule(principal: Principal, schedule_id: str, changes: dict[str, Any]) -> ContentSchedule:
    with db.tenant_transaction(principal.tenant_id) as conn:
        current = service.found(store_schedules.get_schedule(conn, schedule_id, for_update=True), "schedule")
        merged = {**current, **changes}
        validate(merged["cron_expression"], merged["timezone"])
        for key in ("site_id", "product_id"):
            if key in changes:
                changes[key] = str(changes[key])
        _check_refs(conn, str(merged["site_id"]), str(merged["product_id"]))
        changes["next_run_at"] = _next_run_or_none(merged["cron_expression"], merged["timezone"], merged["is_active"])
        row = service.found(store_schedules.update_schedule(conn, schedule_id, changes), "schedule")
        audit.record(conn, principal, "schedule.update", "schedule", schedule_id, {"fields": sorted(changes)})
        _put_schedule(principal.tenant_id, row, create=False)
    return ContentSchedule.model_validate(row)


def delete_schedule(principal: Principal, schedule_id: str) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        if not store_schedules.delete_schedule(conn, schedule_id):
            raise NotFound("schedule not found")
        audit.record(conn, principal, "schedule.delete", "schedule", schedule_id)
        _delete_schedule(schedule_id)


def get_schedule(conn: Connection, schedule_id: str) -> ContentSchedule:
    return ContentSchedule.model_validate(service.found(store_schedules.get_schedule(conn, schedule_id), "schedule"))


def list_schedules(conn: Connection, cursor: str | None, limit: int) -> Page:
    return store_schedules.list_schedules(conn, cursor, limit)


def list_jobs(conn: Connection, schedule_id: str) -> ScheduleJobList:
    """The schedule's latest firings (404 when the schedule is not found)."""
    service.found(store_schedules.get_schedule(conn, schedule_id), "schedule")
    return ScheduleJobList.model_validate({"items": store_schedules.latest_jobs(conn, schedule_id)})


# ---------------------------------------------------------------- firing
def scheduled_for(scheduled_time: object, row: Row) -> datetime:
    """The occurrence a firing stands for: its ``scheduled_time`` when EventBridge substituted it (ISO 8601),
    else (the local ticker passes the placeholder or nothing) the latest occurrence of the cron."""
    if isinstance(scheduled_time, str) and not scheduled_time.startswith("<"):
        try:
            moment = datetime.fromisoformat(scheduled_time.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            pass
    return latest_occurrence(row["cron_expression"], row["timezone"])


def fire(tenant_id: str, schedule_id: str, scheduled_time: object = None) -> dict[str, Any]:
    """One firing: a schedule_jobs row and a run, at most once per scheduled time."""
    try:
        return _fire(tenant_id, schedule_id, scheduled_time)
    except NotFound:  # the tenant was deleted and its schedule outlived it
        log.warning("content schedule %s fired for unknown tenant %s: ignored", schedule_id, tenant_id)
        return {"status": "ignored"}


def _fire(tenant_id: str, schedule_id: str, scheduled_time: object) -> dict[str, Any]:
    with db.tenant_transaction(tenant_id) as conn:
        row = store_schedules.get_schedule(conn, schedule_id)
        if row is None or not row["is_active"]:
            log.warning("schedule %s of tenant %s is gone or inactive: firing ignored", schedule_id, tenant_id)
            return {"status": "ignored"}
        occurrence = scheduled_for(scheduled_time, row)
        job = store_schedules.insert_job(conn, schedule_id, occurrence)
        if job is None:
            return {"status": "duplicate", "scheduled_for": occurrence.isoformat()}
        job_id = str(job["id"])
        store_schedules.set_next_run(conn, schedule_id, next_run_at(row["cron_expression"], row["timezone"]))
        try:
            with conn.transaction():
                generation.take_articles(conn, tenant_id, row["articles_per_run"])  # canceled, over the plan: 402
                run = generation.create_pipeline_run(conn, f"schedule:{schedule_id}", str(row["product_id"]),
                                                     articles_count=row["articles_per_run"],
                                                     publish_mode=row["publish_mode"], schedule_job_id=job_id)
        except Exception as exc:  # the site lost its token, the plan refused: the job records why nothing ran
            store_schedules.job_failed(conn, job_id, str(exc)[:2000])
            return {"status": "failed", "job_id": job_id, "error": str(exc)}
        store_schedules.job_started(conn, job_id, str(run["id"]))
    generation.start_execution(tenant_id, str(run["id"]))
    return {"status": "started", "job_id": job_id, "run_id": str(run["id"]), "scheduled_for": occurrence.isoformat()}
