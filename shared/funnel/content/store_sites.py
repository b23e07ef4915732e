"""Data access of the content area's WordPress sites and products (``sites``, ``products``).

The rules (URL checks, token encryption, site activation, audit) stay in ``service``. Rows are dict rows
shaped like the routes' response models (``models.Site``, ``models.Product``).
"""
from __future__ import annotations

from typing import Any

from funnel.content.store_rows import delete_by_id, insert_row, select_by_id, update_by_id
from funnel.db import Connection, Row
from funnel.platform.pagination import Page, keyset_page

SITE_COLUMNS = ("id, user_id, slug, wp_admin_url, wp_username, (wp_api_token IS NOT NULL) AS has_token, status, "
                "created_at, updated_at")
PRODUCT_COLUMNS = ("id, user_id, site_id, url, name, description, analysis_result, image_style, color_theme, "
                   "image_size, created_at, updated_at")


# ---------------------------------------------------------------- sites
def slug_taken(conn: Connection, slug: str) -> bool:
    return conn.execute("SELECT 1 FROM sites WHERE slug = %s", (slug,)).fetchone() is not None


def insert_site(conn: Connection, *, user_id: str | None, slug: str, wp_admin_url: str, wp_username: str | None,
                wp_api_token: str | None, status: str) -> Row:
    return insert_row(conn, "sites", {"user_id": user_id, "slug": slug, "wp_admin_url": wp_admin_url,
                                      "wp_username": wp_username, "wp_api_token": wp_api_token, "status": status},
                      SITE_COLUMNS)


def get_site(conn: Connection, site_id: str, *, for_update: bool = False) -> Row | None:
    return select_by_id(conn, "sites", SITE_COLUMNS, site_id, for_update=for_update)


def site_credentials(conn: Connection, site_id: str) -> Row | None:
    """``wp_admin_url, wp_username, wp_api_token`` (encrypted) and ``status``: what publishing needs."""
    return select_by_id(conn, "sites", "wp_admin_url, wp_username, wp_api_token, status", site_id)


def update_site(conn: Connection, site_id: str, changes: dict[str, Any]) -> Row | None:
    return update_by_id(conn, "sites", SITE_COLUMNS, site_id, changes)


def list_sites(conn: Connection, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table="sites", columns=SITE_COLUMNS, cursor=cursor, limit=limit, filters={})


def delete_site(conn: Connection, site_id: str) -> bool:
    return delete_by_id(conn, "sites", site_id)


# ---------------------------------------------------------------- products
def insert_product(conn: Connection, values: dict[str, Any]) -> Row:
    """``values``: user_id and the columns of ``routes.ProductBody``."""
    return insert_row(conn, "products", values, PRODUCT_COLUMNS)


def get_product(conn: Connection, product_id: str) -> Row | None:
    return select_by_id(conn, "products", PRODUCT_COLUMNS, product_id)


def update_product(conn: Connection, product_id: str, changes: dict[str, Any]) -> Row | None:
    return update_by_id(conn, "products", PRODUCT_COLUMNS, product_id, changes)


def list_products(conn: Connection, cursor: str | None, limit: int, site_id: str | None) -> Page:
    return keyset_page(conn, table="products", columns=PRODUCT_COLUMNS, cursor=cursor, limit=limit,
                       filters={"site_id": site_id})


def delete_product(conn: Connection, product_id: str) -> bool:
    return delete_by_id(conn, "products", product_id)
