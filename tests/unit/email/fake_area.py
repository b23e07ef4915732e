"""An in-memory fake of the e-mail area's store modules (``store_campaigns``, ``store_messages``,
``store_events``), the do-not-contact list, the email queue and the transaction, so the area's rules run
with no database: ``email_area`` installs it and returns it. Every store function the fake does not provide
fails the test if called, so nothing reaches a database unnoticed."""
from __future__ import annotations

import inspect
import uuid
from contextlib import contextmanager
from typing import Any

import pytest

from funnel import db, observability
from funnel.billing import limits
from funnel.email import (
    completion,
    delivery,
    events,
    reminders,
    sending,
    sns,
    stats,
    store_campaigns,
    store_events,
    store_messages,
    tokens,
    transport,
)
from funnel.platform import audit, suppression
from tests.support.directory import install_fake_directory

TENANT = "5b0c1c1e-0000-4000-8000-00000000e4a1"
KEY = b"k" * 32
STORE_MODULES = (store_campaigns, store_events, store_messages)


class FakeStore:
    """The store functions the rules call, over dicts: ``campaigns`` and ``messages`` by id (rows as the store
    returns them), ``events`` (one dict per email_events row), the sending slots already taken (``slots``: in the
    last second, in the last day; ``slots_used`` counts the ones taken here) and the do-not-contact list
    (``suppressed``: normalised address or domain -> reason).

    ``next_reminder_in_days`` stands for ``next_reminder_at``: None (no reminder), or days from now (due when
    <= 0); a campaign's ``updated_ago`` and a message's ``attempted_ago`` (None: never) for ``updated_at`` and
    ``attempted_at``, in seconds before now. ``notified`` lists the notifications the rules sent."""

    def __init__(self) -> None:
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.slots = (0, 0)
        self.slots_used = 0
        self.suppressed: dict[str, str] = {}
        self.queued: list[dict[str, Any]] = []  # records put on the email queue
        self.sent: list[dict[str, Any]] = []  # mails transmitted: {"message", "subject", "round"}
        self.metrics: list[str] = []
        self.audited: list[str] = []
        self.queue_down = False
        self.notified: list[dict[str, Any]] = []

    # ------------------------------------------------------------ building the world

    def add_campaign(self, **fields: Any) -> dict[str, Any]:
        campaign = {"id": str(uuid.uuid4()), "user_id": None, "task_id": None, "name": "Docs",
                    "subject": "資料のご送付", "body": "{{name}} 様\nhttps://docs.example.com/a.pdf",
                    "from_name": "山田", "from_address": "sales@example.co.jp",
                    "sender_identity": "株式会社サンプル 東京都", "reminder_strategy": None, "attachment_urls": [],
                    "smtp_profile_id": None, "status": "draft", "error": None, "send_at": None, "created_at": None,
                    "updated_ago": 0, **fields}
        self.campaigns[campaign["id"]] = campaign
        return campaign

    def add_message(self, campaign: dict[str, Any], email: str, **fields: Any) -> dict[str, Any]:
        message = {"id": str(uuid.uuid4()), "tenant_id": TENANT, "campaign_id": campaign["id"], "contact_id": None,
                   "email": email, "name": None, "company": None, "status": "queued", "reminder_sent": 0,
                   "error": None, "sent_at": None, "provider_message_id": None, "tracking_token": None,
                   "next_reminder_in_days": None, "age": None, "attempted_ago": None, **fields}
        self.messages[message["id"]] = message
        return message

    def add_event(self, message: dict[str, Any], event_type: str, is_machine: bool = False, **fields: Any) -> None:
        self.events.append({"message_id": message["id"], "type": event_type, "is_machine": is_machine,
                            "reminder_round": message["reminder_sent"], "dedup_key": None, "detail": None,
                            "url": None, **fields})

    # ------------------------------------------------------------ store_campaigns

    def campaign(self, conn, campaign_id, for_update=False):
        found = self.campaigns.get(str(campaign_id))
        return dict(found) if found else None

    def contacts_by_id(self, conn, contact_ids):
        return []

    def smtp_from_address(self, conn, profile_id):
        return None

    def insert_campaign(self, conn, **fields):
        return dict(self.add_campaign(**fields))

    def insert_messages(self, conn, campaign_id, recipients):
        for r in recipients:
            if any(m["campaign_id"] == campaign_id and m["email"] == r["email"] for m in self.messages.values()):
                continue
            reason = self.suppressed.get(r["email"]) or self.suppressed.get(r["domain"])
            self.add_message(self.campaigns[campaign_id], r["email"], name=r.get("name"), company=r.get("company"),
                             contact_id=r.get("contact_id"), status="suppressed" if reason else "queued",
                             error=reason)

    def set_campaign_status(self, conn, campaign_id, status):
        self.campaigns[campaign_id]["status"] = status

    def set_campaign_send(self, conn, campaign_id, status, send_at):
        self.campaigns[campaign_id].update(status=status, send_at=send_at)

    # ------------------------------------------------------------ store_messages

    def lock_tenant_send_rate(self, conn):
        pass

    def slots_taken(self, conn):
        return self.slots

    def take_slot(self, conn):
        self.slots_used += 1

    def forget_old_slots(self, conn):
        pass

    def queued_count(self, conn, campaign_id):
        return sum(1 for m in self._of(campaign_id) if m["status"] == "queued")

    def campaign_status_for_share(self, conn, campaign_id):
        found = self.campaigns.get(campaign_id)
        return found["status"] if found else None

    def queued_message_ids(self, conn, campaign_id, after, limit):
        ids = sorted(m["id"] for m in self._of(campaign_id) if m["status"] == "queued")
        return [i for i in ids if after is None or i > after][:limit]

    def due_scheduled_campaign_ids(self, conn):
        return [c["id"] for c in self.campaigns.values() if c["status"] == "scheduled" and c["send_at"] == "due"]

    def start_scheduled_campaign(self, conn, campaign_id):
        if self.campaigns[campaign_id]["status"] != "scheduled":
            return False
        self.campaigns[campaign_id]["status"] = "sending"
        return True

    def lock_finished_campaigns(self, conn, campaign_id=None):
        return [{"id": c["id"], "tenant_id": c.get("tenant_id"), "user_id": c.get("user_id"), "name": c.get("name"),
                 "sent": sum(1 for m in self._of(c["id"]) if m["status"] in ("sent", "bounced", "complained")),
                 "failed": sum(1 for m in self._of(c["id"]) if m["status"] == "failed")}
                for c in self.campaigns.values()
                if c["status"] == "sending" and campaign_id in (None, c["id"])
                and not any(m["status"] == "queued" for m in self._of(c["id"]))]

    def failure_reasons(self, conn, campaign_id, limit):
        counts: dict[Any, int] = {}
        for m in self._of(campaign_id):
            if m["status"] == "failed":
                counts[m["error"]] = counts.get(m["error"], 0) + 1
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0] or ""))
        return [{"error": error, "n": n} for error, n in ranked[:limit]]

    def end_campaign(self, conn, campaign_id, status, error):
        self.campaigns[str(campaign_id)].update(status=status, error=error, updated_ago=0)

    def fail_messages_of_stalled_campaigns(self, conn, idle_seconds, reason):
        stalled = [c["id"] for c in self.campaigns.values() if c["status"] == "sending"
                   and c["updated_ago"] > idle_seconds
                   and not any(m["attempted_ago"] is not None and m["attempted_ago"] <= idle_seconds
                               for m in self._of(c["id"]))]
        failed = []
        for campaign_id in stalled:
            for m in self._of(campaign_id):
                if m["status"] == "queued":
                    m.update(status="failed", error=reason, next_reminder_in_days=None)
                    failed.append(campaign_id)
        return list(dict.fromkeys(failed))

    def mark_attempted(self, conn, message_id):
        if self.messages[message_id]["status"] == "queued":
            self.messages[message_id]["attempted_ago"] = 0

    def message(self, conn, message_id):
        found = self.messages.get(message_id)
        return dict(found) if found else None

    lock_message = message

    def mark_suppressed(self, conn, message_id, reason):
        if self.messages[message_id]["status"] == "queued":
            self.messages[message_id].update(status="suppressed", error=reason)

    def mark_sent(self, conn, message_id, provider_message_id, tracking_token, first_reminder_days):
        self.messages[message_id].update(status="sent", sent_at="now", provider_message_id=provider_message_id,
                                         tracking_token=tracking_token, next_reminder_in_days=first_reminder_days)

    def set_final_status(self, conn, message_id, status, error=None):
        message = self.messages[str(message_id)]
        message.update(status=status, error=error or message["error"], next_reminder_in_days=None)

    def due_reminders(self, conn, limit):
        due = [m for m in self.messages.values() if m["next_reminder_in_days"] is not None
               and m["next_reminder_in_days"] <= 0 and m["status"] == "sent"
               and self.campaigns[m["campaign_id"]]["status"] != "cancelled"]
        return [{"id": m["id"], "email": m["email"], "reminder_sent": m["reminder_sent"],
                 "reminder_strategy": self.campaigns[m["campaign_id"]]["reminder_strategy"]} for m in due[:limit]]

    def lease_reminder(self, conn, message_id, seconds):
        self.messages[message_id]["next_reminder_in_days"] = seconds / 86400

    def mark_reminder_sent(self, conn, message_id, reminder_round, next_days):
        self.messages[message_id].update(reminder_sent=reminder_round, next_reminder_in_days=next_days)

    def stop_reminders(self, conn, message_id):
        self.messages[str(message_id)]["next_reminder_in_days"] = None

    # ------------------------------------------------------------ store_events

    def message_for_event(self, conn, message_id):
        found = self.messages.get(message_id)
        return ({k: found[k] for k in ("id", "campaign_id", "email", "name", "company", "reminder_sent", "age")}
                if found else None)

    def message_address(self, conn, message_id):
        found = self.messages.get(message_id)
        return found["email"] if found else None

    def _recorded(self, dedup_key):
        return dedup_key is not None and any(e["dedup_key"] == dedup_key for e in self.events)

    def insert_tracking_event(self, conn, message_id, event_type, *, url, user_agent, ip, machine, dedup_key,
                              reminder_round):
        if self._recorded(dedup_key):
            return False
        self.events.append({"message_id": message_id, "type": event_type, "url": url, "user_agent": user_agent,
                            "ip": ip, "is_machine": machine is not None,
                            "detail": {"machine": machine} if machine else None, "dedup_key": dedup_key,
                            "reminder_round": reminder_round})
        return True

    def insert_provider_event(self, conn, message_id, event_type, detail, dedup_key):
        if self._recorded(dedup_key):
            return False
        self.events.append({"message_id": str(message_id), "type": event_type, "is_machine": False,
                            "detail": detail, "dedup_key": dedup_key, "reminder_round": 0, "url": None})
        return True

    def soft_bounce_count(self, conn, email):
        return sum(1 for e in self.events if e["type"] == "bounce" and self.messages[e["message_id"]]["email"] == email
                   and (e["detail"] or {}).get("bounceType") not in ("Permanent", None))

    def human_event_types(self, conn, message_id):
        """As the store's query: the types of the message's events not flagged as a machine's."""
        return {e["type"] for e in self.events if e["message_id"] == str(message_id) and not e["is_machine"]}

    def _of(self, campaign_id):
        return [m for m in self.messages.values() if m["campaign_id"] == str(campaign_id)]


@pytest.fixture
def email_area(monkeypatch) -> FakeStore:
    """Install a FakeStore in place of the store modules, the do-not-contact list, the queue, the tracking key,
    SES (``fake.sent`` lists what went out), the notifications (``fake.notified``) and the transaction; returns
    it."""
    fake = FakeStore()
    for module in STORE_MODULES:
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__:
                continue
            monkeypatch.setattr(module, name, getattr(fake, name, _not_faked(module.__name__, name)))

    @contextmanager
    def transaction(tenant_id):
        assert tenant_id == TENANT
        yield object()

    def is_suppressed(conn, *, email=None, **others):
        address = suppression.normalized("email", email)
        reason = fake.suppressed.get(address) or fake.suppressed.get(address.split("@", 1)[1])
        return f"email on the do-not-contact list ({reason})" if reason else None

    def suppress(conn, kind, value, reason, source=None):
        fake.suppressed[suppression.normalized(kind, value)] = reason

    class Queue:
        def send_message(self, QueueUrl, MessageBody, **kwargs):
            if fake.queue_down:
                from botocore.exceptions import EndpointConnectionError

                raise EndpointConnectionError(endpoint_url="https://sqs.example/")
            fake.queued.append(__import__("json").loads(MessageBody))

        def send_message_batch(self, QueueUrl, Entries):
            for entry in Entries:
                self.send_message(QueueUrl, entry["MessageBody"])
            return {"Successful": Entries}

    class Ses:
        def send_email(self, **request):
            raw = request["Content"]["Raw"]["Data"]
            import email
            import email.policy

            mail = email.message_from_bytes(raw, policy=email.policy.default)
            fake.sent.append({"to": request["Destination"]["ToAddresses"][0], "subject": str(mail["Subject"]),
                              "tags": request["EmailTags"]})
            return {"MessageId": f"ses-{len(fake.sent)}"}

    def counted(name, value=1, *, tenant_id, unit="Count"):
        fake.metrics.append(name)

    monkeypatch.setattr(db, "tenant_transaction", transaction)
    monkeypatch.setattr(suppression, "is_suppressed", is_suppressed)
    monkeypatch.setattr(suppression, "suppress", suppress)
    monkeypatch.setattr(audit, "record", lambda conn, principal, action, *rest: fake.audited.append(action))
    monkeypatch.setattr(sending, "_queue", Queue)
    monkeypatch.setattr(transport, "_ses_client", Ses)
    monkeypatch.setattr(tokens, "tracking_key", lambda: KEY)
    monkeypatch.setattr(completion, "notify", lambda tenant_id, **notification: fake.notified.append(notification))
    monkeypatch.setattr(observability, "count", counted)
    fake.directory = install_fake_directory(monkeypatch)  # the send gate reads it (verified unless listed)
    # the plan's e-mails (funnel.billing.limits, tests/unit/billing and tests/integration/billing): always allowed here
    monkeypatch.setattr(limits, "take", lambda conn, tenant_id, metric, amount=1: None)
    monkeypatch.setattr(limits, "give_back", lambda conn, metric, amount=1: None)
    monkeypatch.setattr(limits, "check_plan_allows", lambda tenant_id, metric: None)
    # the subscription's standing (tests/e2e/billing): in good standing here
    monkeypatch.setattr(limits, "subscription_allows_use", lambda tenant_id: None)
    monkeypatch.setattr(limits, "check_subscription", lambda tenant_id: None)
    for module in (delivery, events, reminders, sns, stats, transport):
        if hasattr(module, "count"):
            monkeypatch.setattr(module, "count", counted)
    return fake


def _not_faked(module: str, name: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{module}.{name} is not in the fake store: add it to FakeStore")
    return refuse
