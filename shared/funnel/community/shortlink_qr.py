"""A shortlink's QR code (PNG or SVG). Its own module: segno is in the API's layer only, and the tracking
function, which imports ``funnel.community.shortlinks``, must not reach it (tests/infrastructure/test_packaging.py)."""
from __future__ import annotations

import io
from uuid import UUID

import segno

from funnel.community import shortlinks
from funnel.db import Connection


def qr_code(conn: Connection, shortlink_id: UUID, *, kind: str, ecc: str, scale: int) -> tuple[bytes, str]:
    """The QR code of the link's scan URL (its short URL with ``?s=qr``), as (image bytes, media type)."""
    link = shortlinks.get(conn, shortlink_id)
    code = segno.make_qr(link["qr_url"], error=ecc.lower())
    out = io.BytesIO()
    if kind == "svg":
        code.save(out, kind="svg", scale=scale, xmldecl=True)
        return out.getvalue(), "image/svg+xml"
    code.save(out, kind="png", scale=scale)
    return out.getvalue(), "image/png"
