"""Community API: shortlinks and their QR codes (included by funnel.community.routes). The redirect itself,
``GET /s/{key}``, is functions/community_shortlinks."""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response

from funnel import db
from funnel.api.contract import Page, problems
from funnel.api.deps import CurrentPrincipal, Cursor, Limit, Writer, page_of
from funnel.community import shortlink_qr, shortlinks
from funnel.community.models_shortlinks import Shortlink, ShortlinkBody, ShortlinkPatchBody

router = APIRouter()
TAGS: list[str | Enum] = ["community"]
REFUSED = "the key or target URL is not valid (a target must be http(s) on a public host), or campaign_id / " \
          "resource_id is not the tenant's"


@router.post("/shortlinks", status_code=201, tags=TAGS, responses=problems(409, 422, validation=REFUSED))
def create_shortlink(body: ShortlinkBody, principal: Writer) -> Shortlink:
    """A shortlink with a random or chosen key (409 when the tenant, or another tenant on the same domain, has
    it). Its domain is the tenant's `shortlink_domain` setting when set, else the product's."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Shortlink.model_validate(shortlinks.create(conn, principal, body.model_dump()))


@router.get("/shortlinks", tags=TAGS)
def list_shortlinks(principal: CurrentPrincipal, campaign_id: UUID | None = None, enabled: bool | None = None,
                    limit: Limit = 50, cursor: Cursor = None) -> Page[Shortlink]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Shortlink, shortlinks.list_shortlinks(conn, campaign_id=campaign_id, enabled=enabled,
                                                             cursor=cursor, limit=limit))


@router.get("/shortlinks/{shortlink_id}", tags=TAGS, responses=problems(404))
def get_shortlink(shortlink_id: UUID, principal: CurrentPrincipal) -> Shortlink:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Shortlink.model_validate(shortlinks.get(conn, shortlink_id))


@router.patch("/shortlinks/{shortlink_id}", tags=TAGS, responses=problems(404, 422, validation=REFUSED))
def update_shortlink(shortlink_id: UUID, body: ShortlinkPatchBody, principal: Writer) -> Shortlink:
    """Only the fields given change; `utm` is replaced whole; a disabled link answers 404."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Shortlink.model_validate(
            shortlinks.update(conn, principal, shortlink_id, body.model_dump(exclude_unset=True)))


@router.delete("/shortlinks/{shortlink_id}", status_code=204, tags=TAGS, responses=problems(404))
def delete_shortlink(shortlink_id: UUID, principal: Writer) -> None:
    """The link and its key's claim; the clicks it recorded stay."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        shortlinks.delete(conn, principal, shortlink_id)


@router.get("/shortlinks/{shortlink_id}/qr", tags=TAGS, response_class=Response, responses={
    200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "the QR code of the link's scan URL"},
    **problems(404)})
def shortlink_qr_code(shortlink_id: UUID, principal: CurrentPrincipal,
                      format: Literal["png", "svg"] = "png",  # noqa: A002 - the query parameter's name
                      ecc: Literal["L", "M", "Q", "H"] = "M",
                      scale: Annotated[int, Query(ge=1, le=40)] = 10) -> Response:
    """A QR code (PNG or SVG, error correction L/M/Q/H) encoding the short URL marked as a scan (`?s=qr`), so a
    scan is recorded as action `scan`, not `click`."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        image, media_type = shortlink_qr.qr_code(conn, shortlink_id, kind=format, ecc=ecc, scale=scale)
    return Response(image, media_type=media_type, headers={"cache-control": "private, max-age=3600"})
