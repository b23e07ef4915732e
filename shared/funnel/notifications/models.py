"""Response models of the notifications API (inbox, admin views, channels).

Field types follow the columns the services select (migrations/tenant/versions/notifications_0001_table.py,
seed 004): a nullable column is a required, nullable field.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from funnel.api.contract import Out

DeliveryMethod = Literal["IN_APP", "EMAIL", "SLACK", "WEBHOOK"]
DeliveryStatus = Literal["PENDING", "RETRYING", "DELIVERED", "FAILED", "CANCELLED"]
Priority = Literal["LOW", "NORMAL", "HIGH", "URGENT"]
NotificationType = Literal["INFO", "SUCCESS", "WARNING", "ERROR", "REMINDER", "APPROVAL", "ALERT"]
ChannelKind = Literal["SLACK", "WEBHOOK"]


class NotificationPersonalization(Out):
    language: str | None = Field(default=None, description="picks the template's language (e.g. `ja`)")
    time_zone: str | None = Field(default=None, description="e.g. `Asia/Tokyo`")


class Notification(Out):
    """One notification to one recipient over one channel (`delivery_method`)."""

    id: UUID
    batch_id: UUID | None = Field(description="shared by the rows of one send to several recipients or channels")
    notification_id: str = Field(description="business id (`ntf_...`)")
    title: str | None
    message: str | None
    action_label: str | None
    action_url: str | None
    archived_at: datetime | None
    delivered_at: datetime | None
    delivery_method: DeliveryMethod
    delivery_status: DeliveryStatus = Field(description="IN_APP rows are DELIVERED when written; the others "
                                                        "start PENDING and are sent by the delivery worker")
    error_message: str | None = Field(description="why the last delivery attempt failed")
    expiry_date: date | None = Field(description="shown in the inbox through this day, then archived")
    external_message_id: str | None = Field(description="the provider's id of the sent message (e.g. SES)")
    is_bulk_notification: bool
    last_retry_at: datetime | None
    max_retry_count: int
    message_format: Literal["PLAIN", "HTML", "MARKDOWN"]
    notification_category: str = Field(description="e.g. `announcement`, `outreach.task`, `content.run_failed`")
    notification_type: NotificationType
    personalization_data: NotificationPersonalization | None
    priority_level: Priority
    read_at: datetime | None
    read_status: Literal["UNREAD", "READ"]
    recipient_id: UUID
    related_entity_id: str | None
    ip_address: str | None = Field(description="where it was read")
    user_agent: str | None = Field(description="where it was read")
    device_type: Literal["WEB", "MOBILE", "DESKTOP", "API", "OTHER"] | None = Field(description="where it was read")
    related_entity_type: str | None = Field(description="what it is about, with `related_entity_id` (e.g. `task`)")
    retry_count: int
    sender_id: UUID | None = Field(description="the user who sent it; null for notifications from Funnel itself")
    sent_at: datetime | None
    template_id: str | None
    template_variables: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class UnreadCount(Out):
    unread: int = Field(description="unread notifications in the inbox, counted up to 1,000")
    capped: bool = Field(description="true when there are 1,000 or more (show e.g. `999+`)")


class NotificationsMarkedRead(Out):
    marked_read: int = Field(description="how many unread notifications were marked read")


class NotificationsSent(Out):
    count: int = Field(description="rows written: one per recipient and channel")
    batch_id: UUID | None = Field(description="shared by the rows; null when only one row was written")
    items: list[Notification] = Field(description="the first 100 rows")


class NotificationMethodStats(Out):
    delivery_method: DeliveryMethod
    total: int
    delivered: int
    failed: int
    pending: int = Field(description="PENDING or RETRYING")
    retries: int = Field(description="failed attempts retried, summed over the notifications")
    avg_delivery_seconds: float | None = Field(description="from writing to delivery, over the delivered ones; "
                                                           "null when none was delivered")


class NotificationDeliveryStats(Out):
    channels: list[NotificationMethodStats] = Field(description="one entry per delivery method that was used")


class NotificationChannel(Out):
    """Where SLACK or WEBHOOK deliveries go (the URL and signing secret are never returned)."""

    id: UUID
    kind: ChannelKind
    user_id: UUID | None = Field(description="the user whose deliveries use it; null: the workspace's channel")
    is_active: bool
    created_at: datetime
    updated_at: datetime


class NotificationChannelSaved(NotificationChannel):
    signing_secret: str | None = Field(
        default=None, description="WEBHOOK only, shown once: the HMAC-SHA256 key of the deliveries' "
                                  "`Funnel-Signature` header (a new one on every save); absent for SLACK")


class NotificationChannelList(Out):
    items: list[NotificationChannel]
