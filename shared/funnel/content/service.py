"""Content domain services: sites, products, clusters, articles, images and publishing to WordPress.

Every write records an audit entry in the same transaction. URLs are checked by the SSRF guard when they are
saved (and again whenever they are fetched). The WordPress application password is encrypted (AES-256-GCM,
tenant-bound) and never returned by the API. SQL is in ``store_sites`` and ``store_articles``; generation
runs are in ``generation``.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from funnel import db
from funnel.content import store_articles, store_sites
from funnel.content.errors import PermanentError
from funnel.content.models import Article, ArticleImageDetail, ClusterDetail, Product, Site
from funnel.db import Connection, Row
from funnel.observability import count
from funnel.platform import audit, crypto, tenants
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.platform.ssrf import UnsafeUrlError, check_url, refused
from funnel.platform.storage import presigned_url
from funnel.settings import get_settings

if TYPE_CHECKING:
    from funnel.content.wordpress import WordPressSite


def safe_url(url: str, what: str) -> str:
    try:
        return check_url(url, get_settings().ssrf_allow_hosts)
    except UnsafeUrlError as exc:
        raise refused(what, exc) from exc


def found(row: Row | None, what: str) -> Row:
    """The row, or NotFound (RLS hides other tenants' rows: a 404 too)."""
    if row is None:
        raise NotFound(f"{what} not found")
    return row


def user_id_of(principal: Principal) -> str | None:
    """The principal's user id, for ``user_id`` columns; None for API keys and other non-user principals."""
    try:
        return str(uuid.UUID(principal.user_id))
    except (ValueError, TypeError):
        return None


# ---------------------------------------------------------------- sites
def create_site(conn: Connection, principal: Principal, *, slug: str, wp_admin_url: str, wp_username: str | None,
                wp_api_token: str | None) -> Site:
    from funnel.content.wordpress import normalise_base_url  # lazy: wordpress imports httpx and nh3

    url = normalise_base_url(safe_url(wp_admin_url, "wp_admin_url"))
    token = crypto.encrypt(wp_api_token, principal.tenant_id) if wp_api_token else None
    status = "active" if token and wp_username else "provisioning"
    if store_sites.slug_taken(conn, slug):
        raise Conflict(f"a site with slug {slug!r} exists")
    row = store_sites.insert_site(conn, user_id=user_id_of(principal), slug=slug, wp_admin_url=url,
                                  wp_username=wp_username, wp_api_token=token, status=status)
    audit.record(conn, principal, "site.create", "site", row["id"], {"slug": slug, "url": url})
    return Site.model_validate(row)


def update_site(conn: Connection, principal: Principal, site_id: str, changes: dict[str, Any]) -> Site:
    from funnel.content.wordpress import normalise_base_url  # lazy: wordpress imports httpx and nh3

    found(store_sites.get_site(conn, site_id, for_update=True), "site")
    if "wp_admin_url" in changes:
        changes["wp_admin_url"] = normalise_base_url(safe_url(changes["wp_admin_url"], "wp_admin_url"))
    if "wp_api_token" in changes:
        token = changes["wp_api_token"]
        changes["wp_api_token"] = crypto.encrypt(token, principal.tenant_id) if token else None
    row = found(store_sites.update_site(conn, site_id, changes), "site")
    if row["status"] == "provisioning" and row["has_token"] and row["wp_username"]:
        row = found(store_sites.update_site(conn, site_id, {"status": "active"}), "site")
    audit.record(conn, principal, "site.update", "site", site_id,
                 {"fields": sorted(changes)})  # never the token itself
    return Site.model_validate(row)


def get_site(conn: Connection, site_id: str) -> Site:
    return Site.model_validate(found(store_sites.get_site(conn, site_id), "site"))


def list_sites(conn: Connection, cursor: str | None, limit: int) -> Page:
    return store_sites.list_sites(conn, cursor, limit)


def delete_site(conn: Connection, principal: Principal, site_id: str) -> None:
    if not store_sites.delete_site(conn, site_id):
        raise NotFound("site not found")
    audit.record(conn, principal, "site.delete", "site", site_id)


def site_client(conn: Connection, tenant_id: str, site_id: str) -> WordPressSite:
    """A WordPress client with the decrypted token; PermanentError when the site cannot publish."""
    from funnel.content.wordpress import WordPressSite  # lazy: wordpress imports httpx and nh3

    site = store_sites.site_credentials(conn, site_id)
    if site is None:
        raise PermanentError("the product's WordPress site no longer exists")
    if not site["wp_api_token"] or not site["wp_username"]:
        raise PermanentError("the WordPress site has no application password (wp_username + wp_api_token)")
    if site["status"] == "suspended":
        raise PermanentError("the WordPress site is suspended")
    return WordPressSite(site["wp_admin_url"], site["wp_username"], crypto.decrypt(site["wp_api_token"], tenant_id))


# ---------------------------------------------------------------- products
def create_product(conn: Connection, principal: Principal, fields: dict[str, Any]) -> Product:
    fields["url"] = safe_url(fields["url"], "url")
    if fields.get("site_id"):
        get_site(conn, str(fields["site_id"]))
        fields["site_id"] = str(fields["site_id"])
    row = store_sites.insert_product(conn, {"user_id": user_id_of(principal), **fields})
    audit.record(conn, principal, "product.create", "product", row["id"], {"url": row["url"]})
    return Product.model_validate(row)


def update_product(conn: Connection, principal: Principal, product_id: str, changes: dict[str, Any]) -> Product:
    if changes.get("url") is not None:  # an explicit null reaches the NOT NULL column: a 422 naming url
        changes["url"] = safe_url(changes["url"], "url")
    if changes.get("site_id"):
        get_site(conn, str(changes["site_id"]))
        changes["site_id"] = str(changes["site_id"])
    row = found(store_sites.update_product(conn, product_id, changes), "product")
    audit.record(conn, principal, "product.update", "product", product_id, {"fields": sorted(changes)})
    return Product.model_validate(row)


def get_product(conn: Connection, product_id: str) -> Row:
    """The product's row (the pipeline reads its columns; the route validates it as ``Product``)."""
    return found(store_sites.get_product(conn, product_id), "product")


def list_products(conn: Connection, cursor: str | None, limit: int, site_id: str | None) -> Page:
    return store_sites.list_products(conn, cursor, limit, site_id)


def delete_product(conn: Connection, principal: Principal, product_id: str) -> None:
    if not store_sites.delete_product(conn, product_id):
        raise NotFound("product not found")
    audit.record(conn, principal, "product.delete", "product", product_id)


# ---------------------------------------------------------------- clusters, articles, images
def list_clusters(conn: Connection, cursor: str | None, limit: int, product_id: str | None) -> Page:
    return store_articles.list_clusters(conn, cursor, limit, product_id)


def get_cluster(conn: Connection, cluster_id: str) -> ClusterDetail:
    cluster = found(store_articles.get_cluster(conn, cluster_id), "cluster")
    return ClusterDetail.model_validate({**cluster, "articles": store_articles.articles_of_cluster(conn, cluster_id)})


def delete_cluster(conn: Connection, principal: Principal, cluster_id: str) -> None:
    if not store_articles.delete_cluster(conn, cluster_id):
        raise NotFound("cluster not found")
    audit.record(conn, principal, "cluster.delete", "article_cluster", cluster_id)


def list_articles(conn: Connection, cursor: str | None, limit: int, cluster_id: str | None,
                  status: str | None) -> Page:
    return store_articles.list_articles(conn, cursor, limit, cluster_id, status)


def get_article(conn: Connection, article_id: str, for_update: bool = False) -> Row:
    """The article's row (the pipeline reads its columns; the routes validate it as ``Article``)."""
    return found(store_articles.get_article(conn, article_id, for_update=for_update), "article")


def update_article(conn: Connection, principal: Principal, article_id: str, changes: dict[str, Any]) -> Article:
    from funnel.content.wordpress import sanitize_html  # lazy: wordpress imports httpx and nh3

    article = get_article(conn, article_id, for_update=True)
    if article["status"] == "archived":
        raise Conflict("an archived article cannot be edited")
    if "content" in changes:
        changes["content"] = sanitize_html(changes["content"])
    row = found(store_articles.update_article(conn, article_id, changes), "article")
    audit.record(conn, principal, "article.update", "article", article_id, {"fields": sorted(changes)})
    return Article.model_validate(row)


def article_site_id(conn: Connection, article_id: str) -> str:
    row = found(store_articles.site_of_article(conn, article_id), "article")
    if row["site_id"] is None:
        raise ValidationFailed("the article's product has no WordPress site")
    return str(row["site_id"])


def article_slug(article_id: str) -> str:
    return f"funnel-{str(article_id).replace('-', '')[:16]}"


def publish_article(tenant_id: str, article_id: str, wp_status: str, principal: Principal | str) -> Article:
    """Create or update the article's WordPress post (idempotent on wp_post_id / slug)."""
    from funnel.content.wordpress import sanitize_html  # lazy: wordpress imports httpx and nh3

    if wp_status == "publish":  # the API's publish and every pipeline's (a scheduled run's too) pass here
        tenants.require_email_verified(tenant_id)

    with db.tenant_transaction(tenant_id) as conn:
        article = get_article(conn, article_id)
        if article["status"] == "archived":
            raise Conflict("an archived article cannot be published")
        if not article["content"]:
            raise ValidationFailed("the article has no content yet")
        site = site_client(conn, tenant_id, article_site_id(conn, article_id))
    post = site.upsert_post(post_id=article["wp_post_id"], slug=article_slug(article_id), title=article["title"],
                            html=article["content"], excerpt=article["meta_description"] or "", status=wp_status,
                            featured_media=article["wp_media_id"])
    with db.tenant_transaction(tenant_id) as conn:
        row = found(store_articles.update_article(conn, article_id, {
            "wp_post_id": post["id"], "wp_status": post.get("status"), "wp_link": post.get("link"),
            "status": "published" if wp_status == "publish" else "draft",
            "content": sanitize_html(article["content"])}), "article")
        if wp_status == "publish":
            row = found(store_articles.stamp_first_publication(conn, article_id), "article")
        audit.record(conn, principal, "article.publish", "article", article_id,
                     {"wp_post_id": post["id"], "wp_status": post.get("status")})
    # The pipeline's publish step and the API's publish both come here.
    count("ArticlesPublished" if wp_status == "publish" else "ArticleDraftsPosted", tenant_id=tenant_id)
    return Article.model_validate(row)


def unpublish_article(tenant_id: str, article_id: str, principal: Principal, archive: bool = False) -> Article:
    with db.tenant_transaction(tenant_id) as conn:
        article = get_article(conn, article_id)
        site = site_client(conn, tenant_id, article_site_id(conn, article_id)) if article["wp_post_id"] else None
    wp_status = None
    if site is not None and article["wp_status"] != "draft":
        wp_status = site.set_status(article["wp_post_id"], "draft").get("status")
    with db.tenant_transaction(tenant_id) as conn:
        changes: dict[str, Any] = {"status": "archived" if archive else "draft"}
        if wp_status:
            changes["wp_status"] = wp_status
        row = found(store_articles.update_article(conn, article_id, changes), "article")
        audit.record(conn, principal, "article.archive" if archive else "article.unpublish", "article", article_id)
    return Article.model_validate(row)


def list_images(conn: Connection, cursor: str | None, limit: int, article_id: str | None) -> Page:
    return store_articles.list_images(conn, cursor, limit, article_id)


def get_image(conn: Connection, image_id: str) -> ArticleImageDetail:
    """The image with a presigned download URL of what is stored."""
    image = found(store_articles.get_image(conn, image_id), "image")
    path = image["storage_path"]
    return ArticleImageDetail.model_validate({**image, "download_url": presigned_url(path) if path else None})


def delete_image(conn: Connection, principal: Principal, image_id: str) -> None:
    if not store_articles.delete_image(conn, image_id):
        raise NotFound("image not found")
    audit.record(conn, principal, "image.delete", "generated_image", image_id)
