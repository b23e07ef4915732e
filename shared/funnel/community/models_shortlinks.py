"""Community API models: shortlinks (their UTM attributes, campaign and resource) and what creating or changing
one takes."""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from funnel.api.contract import Out
from funnel.api.deps import StrictModel

RedirectStatus = Literal[301, 302]
UtmValue = Field(default=None, min_length=1, max_length=200)


class Utm(StrictModel):
    """UTM parameters merged into the target's query on each redirect (a parameter the target already has wins)."""
    utm_source: str | None = UtmValue
    utm_medium: str | None = UtmValue
    utm_campaign: str | None = UtmValue
    utm_term: str | None = UtmValue
    utm_content: str | None = UtmValue


class ShortlinkBody(StrictModel):
    target_url: str = Field(max_length=2000, examples=["https://example.com/docs/start"],
                            description="http or https, a public host")
    key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{3,64}$",
                            description="chosen key; omitted: 8 random base62 characters")
    utm: Utm = Field(default_factory=Utm)
    campaign_id: UUID | None = None
    resource_id: UUID | None = None
    enabled: bool = True
    redirect_status: RedirectStatus = Field(default=302, description="302 (default) or 301 (permanent, cached)")


class ShortlinkPatchBody(StrictModel):
    """Only the fields given change; the key does not (printed QR codes carry it)."""
    target_url: str | None = Field(default=None, max_length=2000)
    utm: Utm | None = None
    campaign_id: UUID | None = None
    resource_id: UUID | None = None
    enabled: bool | None = None
    redirect_status: RedirectStatus | None = None


class ShortlinkUtm(Out):
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None


class Shortlink(Out):
    shortlink_id: UUID
    key: str
    host: str = Field(description="the domain the key is claimed on ('' = the product's default domain)")
    short_url: str
    qr_url: str = Field(description="what the QR code encodes: the short URL marked as a scan")
    target_url: str
    utm: ShortlinkUtm
    campaign_id: UUID | None
    resource_id: UUID | None
    enabled: bool
    redirect_status: RedirectStatus
    created_at: datetime
    updated_at: datetime
