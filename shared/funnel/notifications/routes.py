"""Notifications API: the signed-in user's inbox, channels and admin views."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import Field

from funnel import db
from funnel.api.contract import Page, problems
from funnel.api.deps import Admin, CurrentPrincipal, Cursor, Limit, StrictModel, Writer, page_of
from funnel.notifications import channels, service
from funnel.notifications.models import (
    Notification,
    NotificationChannelList,
    NotificationChannelSaved,
    NotificationDeliveryStats,
    NotificationsMarkedRead,
    NotificationsSent,
    UnreadCount,
)
from funnel.platform import audit
from funnel.platform.errors import Forbidden

router = APIRouter(prefix="/v1")
Channel = Literal["IN_APP", "EMAIL", "SLACK", "WEBHOOK"]
Priority = Literal["LOW", "NORMAL", "HIGH", "URGENT"]


@router.get("/notifications", tags=["notifications"], response_model_exclude_unset=True)
def list_notifications(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                       read_status: Literal["READ", "UNREAD"] | None = None,
                       category: str | None = Query(default=None, max_length=50),
                       priority: Priority | None = None) -> Page[Notification]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Notification, service.inbox(conn, principal, read_status=read_status, category=category,
                                                   priority=priority, cursor=cursor, limit=limit))


@router.get("/notifications/unread-count", tags=["notifications"])
def unread_count(principal: CurrentPrincipal) -> UnreadCount:
    """Counted up to 1,000 (`capped` true beyond): enough for a badge."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        count = service.unread_count(conn, principal)
    return UnreadCount(unread=count, capped=count >= service.UNREAD_COUNT_CAP)


@router.post("/notifications/read-all", tags=["notifications"])
def mark_all_read(principal: CurrentPrincipal, request: Request) -> NotificationsMarkedRead:
    with db.tenant_transaction(principal.tenant_id) as conn:
        marked = service.mark_all_read(conn, principal, request.headers.get("user-agent"))
    return NotificationsMarkedRead(marked_read=marked)


class NotificationReadBody(StrictModel):
    read_at: datetime | None = Field(default=None, description="when the client showed it (default: now)")


@router.post("/notifications/{notification_id}/read", tags=["notifications"],
             response_model_exclude_unset=True,
             responses=problems(404, 409, conflict="`read_at` is before the notification was sent"))
def mark_read(notification_id: UUID, principal: CurrentPrincipal, request: Request,
              body: NotificationReadBody | None = None) -> Notification:
    """Records where it was read too (IP, user agent, device type)."""
    user_agent = request.headers.get("user-agent")
    with db.tenant_transaction(principal.tenant_id) as conn:
        if body is not None and body.read_at is not None:
            row = service.set_read_at(conn, principal, str(notification_id), body.read_at, user_agent)
        else:
            row = service.mark_read(conn, principal, str(notification_id), True, user_agent)
    return Notification.model_validate(row)


@router.post("/notifications/{notification_id}/unread", tags=["notifications"],
             response_model_exclude_unset=True,
             responses=problems(404, 409, conflict="An archived notification cannot be marked unread"))
def mark_unread(notification_id: UUID, principal: CurrentPrincipal) -> Notification:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Notification.model_validate(service.mark_read(conn, principal, str(notification_id), False))


@router.post("/notifications/{notification_id}/archive", tags=["notifications"],
             response_model_exclude_unset=True, responses=problems(404))
def archive(notification_id: UUID, principal: CurrentPrincipal) -> Notification:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Notification.model_validate(service.archive(conn, principal, str(notification_id)))


@router.delete("/notifications/{notification_id}", status_code=204, tags=["notifications"],
               responses=problems(404))
def delete(notification_id: UUID, principal: CurrentPrincipal) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        service.delete(conn, principal, str(notification_id))


def _in_app_only() -> list[Channel]:
    return ["IN_APP"]


class NotificationSendBody(StrictModel):
    recipient_ids: list[UUID] = Field(min_length=1, max_length=10_000)
    category: str = Field(default="announcement", pattern=r"^[a-z][a-z0-9_.]{0,49}$")
    title: str | None = Field(default=None, min_length=1, max_length=200)
    message: str | None = Field(default=None, max_length=20_000)
    template_id: str | None = Field(default=None, max_length=50)
    template_variables: dict[str, str | int | float] | None = None
    channels: list[Channel] = Field(default_factory=_in_app_only, min_length=1, max_length=4)
    priority: Priority = "NORMAL"
    notification_type: Literal["INFO", "SUCCESS", "WARNING", "ERROR", "REMINDER", "APPROVAL", "ALERT"] = "INFO"
    action_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://")
    action_label: str | None = Field(default=None, max_length=50)
    expiry_date: date | None = None
    language: str | None = Field(default=None, max_length=10)
    time_zone: str | None = Field(default=None, max_length=50)


@router.post("/notifications", status_code=201, tags=["notifications"],
             response_model_exclude_unset=True, responses=problems(
                 422, validation="The request is not valid: a recipient is not a user of this workspace, the "
                                 "template is unknown or misses variables, or there is neither a title nor a "
                                 "template"))
def send(body: NotificationSendBody, principal: Admin) -> NotificationsSent:
    """An admin's announcement to users (bulk sends share one batch_id)."""
    personalization = {k: v for k, v in (("language", body.language), ("time_zone", body.time_zone)) if v}
    rows = service.notify(
        principal.tenant_id, recipient_user_ids=[str(r) for r in body.recipient_ids], category=body.category,
        title=body.title, body=body.message, priority=body.priority, channels=tuple(body.channels),
        template_id=body.template_id, template_variables=body.template_variables, sender_user_id=principal.user_id,
        expiry_date=body.expiry_date, notification_type=body.notification_type, action_url=body.action_url,
        action_label=body.action_label, personalization=personalization or None)
    with db.tenant_transaction(principal.tenant_id) as conn:
        audit.record(conn, principal, "notification.send", "notification_batch",
                     rows[0]["batch_id"] or rows[0]["id"], {"count": len(rows), "channels": body.channels})
    return NotificationsSent.model_validate({"count": len(rows), "batch_id": rows[0]["batch_id"],
                                             "items": rows[:100]})


@router.get("/admin/notifications", tags=["notifications"], response_model_exclude_unset=True)
def list_for_admin(principal: Admin, limit: Limit = 50, cursor: Cursor = None, recipient_id: UUID | None = None,
                   delivery_status: Literal["PENDING", "RETRYING", "DELIVERED", "FAILED", "CANCELLED"] | None = None,
                   delivery_method: Channel | None = None) -> Page[Notification]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Notification, service.list_for_admin(
            conn, recipient_id=str(recipient_id) if recipient_id else None, delivery_status=delivery_status,
            delivery_method=delivery_method, cursor=cursor, limit=limit))


@router.post("/admin/notifications/{notification_id}/resend", tags=["notifications"],
             response_model_exclude_unset=True,
             responses=problems(404, 409, conflict="Only FAILED deliveries are resent"))
def resend(notification_id: UUID, principal: Admin) -> Notification:
    return Notification.model_validate(service.resend(principal.tenant_id, principal, str(notification_id)))


@router.get("/admin/notifications/stats", tags=["notifications"])
def stats(principal: Admin) -> NotificationDeliveryStats:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return NotificationDeliveryStats.model_validate({"channels": service.delivery_stats(conn)})


class NotificationChannelBody(StrictModel):
    url: str = Field(min_length=8, max_length=2000)
    user_id: UUID | None = Field(default=None, description="only this user's deliveries (default: the workspace's)")


def _own_scope(principal, user_id: UUID | None) -> None:
    """Admins set any user's channel or the workspace's; members only their own."""
    if not principal.has_role("admin") and (user_id is None or str(user_id) != principal.user_id):
        raise Forbidden("members may set only their own channels (user_id = your id)")


@router.put("/notification-channels/{kind}", tags=["notifications"], response_model_exclude_unset=True)
def save_channel(kind: Literal["SLACK", "WEBHOOK"], body: NotificationChannelBody,
                 principal: Writer) -> NotificationChannelSaved:
    """Set the Slack incoming webhook or the signed webhook endpoint; a webhook's signing secret is shown once.

    Without `user_id` (admins): the workspace's channel; with it: that user's, which wins for their deliveries."""
    _own_scope(principal, body.user_id)
    with db.tenant_transaction(principal.tenant_id) as conn:
        saved = channels.save_channel(conn, principal, kind, body.url, str(body.user_id) if body.user_id else None)
    return NotificationChannelSaved.model_validate(saved)


@router.get("/notification-channels", tags=["notifications"])
def list_channels(principal: Writer) -> NotificationChannelList:
    """Admins see every channel, members their own (URLs and secrets are never returned)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        rows = channels.list_channels(conn, None if principal.has_role("admin") else principal.user_id)
    return NotificationChannelList.model_validate({"items": rows})


@router.delete("/notification-channels/{channel_id}", status_code=204, tags=["notifications"],
               responses=problems(404))
def delete_channel(channel_id: UUID, principal: Writer) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        channels.delete_channel(conn, principal, str(channel_id),
                                None if principal.has_role("admin") else principal.user_id)
