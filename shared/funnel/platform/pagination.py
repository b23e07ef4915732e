"""Cursor pagination: opaque cursors over a (created_at, id) keyset, newest first."""
from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from funnel.platform.errors import ValidationFailed

MAX_LIMIT = 200


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("invalid cursor") from exc
    if not isinstance(values, list) or len(values) != size:
        raise ValidationFailed("invalid cursor")
    return values


@dataclass
class Page:
    items: list[dict]
    next_cursor: str | None

    @classmethod
    def from_rows(cls, rows: list[dict], limit: int, cursor_of: Callable[[dict], str]) -> "Page":
        has_more = len(rows) > limit
        items = rows[:limit]
        return cls(items=items, next_cursor=cursor_of(items[-1]) if has_more and items else None)
