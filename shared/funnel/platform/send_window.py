"""A send window: the weekdays and local hours in which something may be sent (an outreach task's own, or a
workspace's default in its settings). One model, so both validate the same way: days 0-6 (0 = Monday), HH:MM,
an IANA time zone; anything else is a 422 naming the field."""
from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field

from funnel.api.deps import StrictModel

CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"  # HH:MM, 00:00-23:59


def known_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Asia/Tokyo``), else ValueError: a send window's days and hours are
    counted in it, so an unknown one would fail every send in it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Asia/Tokyo") from exc
    return name


class SendWindow(StrictModel):
    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(default_factory=lambda: [0, 1, 2, 3, 4], max_length=7,
                                                          description="weekdays, 0 = Monday ... 6 = Sunday")
    start: str = Field(default="09:00", pattern=CLOCK_TIME, description="HH:MM local time")
    end: str = Field(default="18:00", pattern=CLOCK_TIME, description="HH:MM local time")
    timezone: Annotated[str, Field(max_length=64), AfterValidator(known_timezone)] = "Asia/Tokyo"
