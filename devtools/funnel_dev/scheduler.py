"""EventBridge Scheduler, ticking: moto stores schedules but never fires them.

Every tick the local scheduler lists the schedules in moto (every group) plus
the ``Schedule``/``ScheduleV2`` events declared on the template's functions, and
fires those that are due: ``at(...)`` once, ``rate(...)`` and ``cron(...)`` on
their period, in their ``ScheduleExpressionTimezone``, between StartDate and
EndDate, skipping DISABLED ones. A Lambda target is called in-process with the
target Input, an SQS target gets the Input as a message, a Step Functions
target starts an execution. ``ActionAfterCompletion=DELETE`` deletes an
``at()`` schedule after it fired. When each schedule last fired is part of the
persisted state, so a restart neither repeats a one-time schedule nor loses a
periodic one.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

log = logging.getLogger("funnel_dev.scheduler")

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_DOW_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


class InvalidScheduleExpression(ValueError):
    pass


def _aws_day_of_week(field: str) -> str:
    """AWS numbers Sunday 1..Saturday 7; croniter numbers Sunday 0..Saturday 6. Names need no change."""
    def shift(match: re.Match) -> str:
        return str(int(match.group(0)) - 1)
    if "#" in field:
        day, nth = field.split("#", 1)
        return f"{re.sub(r'[1-7]', shift, day)}#{nth}"
    return re.sub(r"(?<![#\d])[1-7](?!\d)", shift, field)


@dataclass
class CronExpression:
    croniter_fields: str
    years: str

    @classmethod
    def parse(cls, body: str) -> CronExpression:
        fields = body.split()
        if len(fields) != 6:
            raise InvalidScheduleExpression(f"cron() needs 6 fields, got {body!r}")
        minute, hour, day_of_month, month, day_of_week, year = fields
        day_of_month = "*" if day_of_month == "?" else day_of_month
        day_of_week = "*" if day_of_week == "?" else _aws_day_of_week(day_of_week)
        return cls(f"{minute} {hour} {day_of_month} {month} {day_of_week}", year)

    def _year_allowed(self, year: int) -> bool:
        if self.years in ("*", "?"):
            return True
        for part in self.years.split(","):
            if "-" in part:
                low, high = part.split("-", 1)
                if int(low) <= year <= int(high):
                    return True
            elif part.isdigit() and int(part) == year:
                return True
        return False

    def next_after(self, moment: datetime) -> datetime | None:
        from croniter import croniter

        iterator = croniter(self.croniter_fields, moment)
        for _ in range(10_000):
            candidate = iterator.get_next(datetime)
            if self._year_allowed(candidate.year):
                return candidate
            if self.years.isdigit() and candidate.year > int(self.years):
                return None
        return None


def next_fire_time(expression: str, zone: str, after: datetime, last_fired: datetime | None) -> datetime | None:
    """The first firing strictly after ``after`` (UTC); None when the schedule will not fire again."""
    tz = ZoneInfo(zone or "UTC")
    found = _AT.match(expression)
    if found:
        moment = datetime.fromisoformat(found.group(1)).replace(tzinfo=tz).astimezone(UTC)
        return moment if last_fired is None else None
    found = _RATE.match(expression)
    if found:
        amount, unit = int(found.group(1)), found.group(2).rstrip("s")
        return (last_fired or after) + timedelta(**{f"{unit}s": amount})
    found = _CRON.match(expression)
    if found:
        following = CronExpression.parse(found.group(1)).next_after((last_fired or after).astimezone(tz))
        return following.astimezone(UTC) if following else None
    raise InvalidScheduleExpression(f"unsupported schedule expression {expression!r}")


@dataclass
class ScheduleEntry:
    key: str                       # schedule ARN, or "template:<Function>.<Event>"
    expression: str
    timezone: str
    fire: Callable[[], None]
    enabled: bool = True
    start: datetime | None = None
    end: datetime | None = None
    delete_after_completion: Callable[[], None] | None = None


def _as_utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class LocalScheduler:
    def __init__(self, scheduler_client, sqs_client, sfn_client, invoke_function: Callable[[str, object], object],
                 template_entries: Callable[[], list[ScheduleEntry]], tick_seconds: float = 1.0,
                 fired: dict[str, str] | None = None):
        self.scheduler = scheduler_client
        self.sqs = sqs_client
        self.sfn = sfn_client
        self.invoke_function = invoke_function
        self.template_entries = template_entries
        self.tick_seconds = tick_seconds
        # key -> ISO time of the last firing (persisted across restarts)
        self.fired: dict[str, str] = dict(fired or {})
        # key -> the time a periodic schedule was first seen (its rate starts there)
        self._first_seen: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="funnel-local-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)  # a tick being handled finishes first
        if self._thread.is_alive():
            log.error("the local scheduler did not stop within 60 s")

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.tick()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("scheduler tick failed")

    # ------------------------------------------------------------ entries
    def _moto_entries(self) -> list[ScheduleEntry]:
        entries = []
        groups = [g["Name"] for g in self.scheduler.list_schedule_groups().get("ScheduleGroups", [])]
        for group in groups:
            for summary in self.scheduler.list_schedules(GroupName=group).get("Schedules", []):
                schedule = self.scheduler.get_schedule(GroupName=group, Name=summary["Name"])
                target = schedule["Target"]
                delete = None
                if schedule.get("ActionAfterCompletion") == "DELETE":
                    def delete(g=group, n=schedule["Name"]):
                        self.scheduler.delete_schedule(GroupName=g, Name=n)
                entries.append(ScheduleEntry(
                    key=schedule["Arn"], expression=schedule["ScheduleExpression"],
                    timezone=schedule.get("ScheduleExpressionTimezone") or "UTC",
                    fire=lambda t=target: self.fire_target(t["Arn"], t.get("Input"), t),
                    enabled=schedule.get("State", "ENABLED") == "ENABLED",
                    start=_as_utc(schedule.get("StartDate")), end=_as_utc(schedule.get("EndDate")),
                    delete_after_completion=delete))
        return entries

    def fire_target(self, arn: str, payload: str | None, target: dict | None = None) -> None:
        service = arn.split(":")[2]
        if service == "lambda":
            event = json.loads(payload) if payload else {}
            self.invoke_function(arn, event)
        elif service == "sqs":
            queue_url = self.sqs.get_queue_url(QueueName=arn.split(":")[5])["QueueUrl"]
            message = {"QueueUrl": queue_url, "MessageBody": payload or "{}"}
            group = ((target or {}).get("SqsParameters") or {}).get("MessageGroupId")
            if group:
                message.update(MessageGroupId=group, MessageDeduplicationId=uuid.uuid4().hex)
            self.sqs.send_message(**message)
        elif service == "states":
            self.sfn.start_execution(stateMachineArn=arn, input=payload or "{}", name=uuid.uuid4().hex)
        else:
            raise InvalidScheduleExpression(f"schedule target {arn} is not a Lambda function, queue or state machine")

    # ------------------------------------------------------------ ticking
    def tick(self, now: datetime | None = None) -> list[str]:
        """Fire every due schedule once; returns the keys fired (tests call this directly too)."""
        now = now or datetime.now(UTC)
        fired_now = []
        with self._lock:
            for entry in [*self.template_entries(), *self._moto_entries()]:
                if not entry.enabled or (entry.start and now < entry.start) or (entry.end and now > entry.end):
                    continue
                last = _as_utc(self.fired.get(entry.key))
                first_seen = self._first_seen.setdefault(entry.key, entry.start or now)
                try:
                    due = next_fire_time(entry.expression, entry.timezone, first_seen, last)
                except InvalidScheduleExpression:
                    log.warning("skipping %s: unsupported expression %s", entry.key, entry.expression)
                    continue
                if due is None:
                    continue
                if due > now:
                    continue
                self.fired[entry.key] = now.isoformat()
                fired_now.append(entry.key)
                try:
                    entry.fire()
                except Exception:
                    log.exception("schedule %s: its target failed", entry.key)
                if entry.delete_after_completion and _AT.match(entry.expression):
                    entry.delete_after_completion()
        return fired_now
