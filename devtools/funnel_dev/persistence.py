"""What must survive a restart of the local runtime, although moto keeps state in memory.

On stop (and right after the first start, so a killed process still keeps its
keys) the runtime writes to ``.funnel/aws-state/``: every Secrets Manager
secret's AWSCURRENT and AWSPREVIOUS values (the data-encryption key above all:
without it stored credentials no longer decrypt), every S3 object with its
content type and metadata, every Scheduler group and schedule, the messages
waiting in SQS queues, and when each schedule last fired. On start it loads
them back before the template's resources are created, so generated secrets
keep their values. A snapshot is written to a sibling folder and swapped in,
so an interrupted write never leaves half a state behind.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("funnel_dev.persistence")

SCHEDULE_FIELDS = ("Description", "ScheduleExpression", "ScheduleExpressionTimezone", "FlexibleTimeWindow",
                   "Target", "State", "KmsKeyArn", "StartDate", "EndDate", "ActionAfterCompletion")


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError(f"cannot store {type(value).__name__}")


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, default=_json_default))


class AwsStateStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    # ------------------------------------------------------------ snapshot
    def snapshot(self, clients, scheduler_fired: dict[str, str]) -> None:
        staging = self.directory.with_name(self.directory.name + ".writing")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _write_json(staging / "secrets.json", self._secrets(clients("secretsmanager")))
        self._s3(clients("s3"), staging / "s3")
        _write_json(staging / "scheduler.json", self._schedules(clients("scheduler")))
        _write_json(staging / "sqs.json", self._queues(clients("sqs")))
        _write_json(staging / "scheduler-fired.json", scheduler_fired)
        previous = self.directory.with_name(self.directory.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        if self.directory.exists():
            self.directory.rename(previous)
        staging.rename(self.directory)
        shutil.rmtree(previous, ignore_errors=True)

    @staticmethod
    def _secrets(client) -> list[dict]:
        saved = []
        for page in client.get_paginator("list_secrets").paginate():
            for secret in page["SecretList"]:
                entry = {"Name": secret["Name"], "Description": secret.get("Description", "")}
                for stage in ("AWSPREVIOUS", "AWSCURRENT"):
                    try:
                        value = client.get_secret_value(SecretId=secret["ARN"], VersionStage=stage)
                    except client.exceptions.ResourceNotFoundException:
                        continue
                    if "SecretString" in value:
                        entry[stage] = value["SecretString"]
                if "AWSCURRENT" in entry:
                    saved.append(entry)
        return saved

    @staticmethod
    def _s3(client, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        buckets = []
        for bucket in client.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            objects = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                for summary in page.get("Contents", []):
                    obj = client.get_object(Bucket=name, Key=summary["Key"])
                    blob = hashlib.sha256(f"{name}/{summary['Key']}".encode()).hexdigest()
                    (directory / blob).write_bytes(obj["Body"].read())
                    objects.append({"Key": summary["Key"], "File": blob,
                                    "ContentType": obj.get("ContentType", "binary/octet-stream"),
                                    "Metadata": obj.get("Metadata", {})})
            buckets.append({"Name": name, "Objects": objects})
        _write_json(directory / "buckets.json", buckets)

    @staticmethod
    def _schedules(client) -> dict:
        groups, schedules = [], []
        for group in client.list_schedule_groups().get("ScheduleGroups", []):
            if group["Name"] != "default":
                groups.append(group["Name"])
            for summary in client.list_schedules(GroupName=group["Name"]).get("Schedules", []):
                schedule = client.get_schedule(GroupName=group["Name"], Name=summary["Name"])
                schedules.append({"GroupName": group["Name"], "Name": schedule["Name"],
                                  **{k: schedule[k] for k in SCHEDULE_FIELDS if schedule.get(k) is not None}})
        return {"groups": groups, "schedules": schedules}

    @staticmethod
    def _queues(client) -> list[dict]:
        """Messages waiting in each queue, read from moto's backend so receive counts stay untouched."""
        from moto.sqs.models import sqs_backends

        from funnel_dev.lambdas import ACCOUNT_ID, REGION

        saved = []
        for queue in list(sqs_backends[ACCOUNT_ID][REGION].queues.values()):
            messages = [{"Body": m.body, "MessageAttributes": m.message_attributes or {},
                         "MessageGroupId": m.group_id, "MessageDeduplicationId": m.deduplication_id}
                        for m in list(queue._messages)]
            if messages:
                saved.append({"QueueName": queue.name, "Messages": messages})
        return saved

    # ------------------------------------------------------------ restore
    def exists(self) -> bool:
        return (self.directory / "secrets.json").exists()

    def fired(self) -> dict[str, str]:
        path = self.directory / "scheduler-fired.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def restore_secrets(self, client) -> None:
        path = self.directory / "secrets.json"
        if not path.exists():
            return
        for entry in json.loads(path.read_text()):
            first = entry.get("AWSPREVIOUS") or entry["AWSCURRENT"]
            client.create_secret(Name=entry["Name"], Description=entry.get("Description", ""), SecretString=first)
            if entry.get("AWSPREVIOUS"):  # putting the current value makes the first one AWSPREVIOUS again
                client.put_secret_value(SecretId=entry["Name"], SecretString=entry["AWSCURRENT"])

    def restore_s3(self, client) -> None:
        path = self.directory / "s3" / "buckets.json"
        if not path.exists():
            return
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in json.loads(path.read_text()):
            if bucket["Name"] not in existing:
                client.create_bucket(Bucket=bucket["Name"])
            for obj in bucket["Objects"]:
                client.put_object(Bucket=bucket["Name"], Key=obj["Key"],
                                  Body=(self.directory / "s3" / obj["File"]).read_bytes(),
                                  ContentType=obj["ContentType"], Metadata=obj["Metadata"])

    def restore_schedules(self, client) -> None:
        path = self.directory / "scheduler.json"
        if not path.exists():
            return
        saved = json.loads(path.read_text())
        existing = {g["Name"] for g in client.list_schedule_groups().get("ScheduleGroups", [])}
        for group in saved["groups"]:
            if group not in existing:
                client.create_schedule_group(Name=group)
        now = datetime.now(UTC)
        for schedule in saved["schedules"]:
            fields = {k: schedule[k] for k in SCHEDULE_FIELDS if k in schedule}
            start = fields.get("StartDate")
            if start and datetime.fromisoformat(start) < now:
                # A start date in the past changes nothing, and the Scheduler API refuses it for recurring schedules.
                fields.pop("StartDate")
            for key in ("StartDate", "EndDate"):
                if key in fields:
                    fields[key] = datetime.fromisoformat(fields[key])
            client.create_schedule(GroupName=schedule["GroupName"], Name=schedule["Name"], **fields)

    def restore_queues(self, client) -> None:
        path = self.directory / "sqs.json"
        if not path.exists():
            return
        for queue in json.loads(path.read_text()):
            try:
                url = client.get_queue_url(QueueName=queue["QueueName"])["QueueUrl"]
            except client.exceptions.QueueDoesNotExist:
                log.warning("queue %s no longer exists; its %d messages are dropped", queue["QueueName"],
                            len(queue["Messages"]))
                continue
            for message in queue["Messages"]:
                request = {"QueueUrl": url, "MessageBody": message["Body"]}
                if message.get("MessageAttributes"):
                    # String and Number attributes only: moto keeps binary values base64-encoded.
                    request["MessageAttributes"] = {
                        name: {"DataType": attr["DataType"], "StringValue": attr["StringValue"]}
                        for name, attr in message["MessageAttributes"].items() if "StringValue" in attr}
                if message.get("MessageGroupId"):
                    request["MessageGroupId"] = message["MessageGroupId"]
                    request["MessageDeduplicationId"] = message.get("MessageDeduplicationId") or hashlib.sha256(
                        message["Body"].encode()).hexdigest()
                client.send_message(**request)
