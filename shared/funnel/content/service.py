"""Content domain services: sites, products, clusters, articles, images, runs.

Every write records an audit entry in the same transaction. URLs are checked
by the SSRF guard when they are saved (and again whenever they are fetched).
The WordPress application password is encrypted (AES-256-GCM, tenant-bound)
and never returned by the API.
"""
from __future__ import annotations

import json
import uuid

from psycopg.types.json import Jsonb

from funnel import db
from funnel.content.errors import PermanentError
from funnel.db import Connection
from funnel.observability import count
from funnel.platform import audit, aws, crypto, runs
from funnel.platform.errors import Conflict, NotFound, PaymentRequired, ServiceUnavailable, ValidationFailed
from funnel.platform.pagination import Page, keyset_page
from funnel.platform.principal import Principal
from funnel.platform.ssrf import UnsafeUrlError, check_url
from funnel.settings import get_settings

RUN_KIND = "article_pipeline"
SITE_COLUMNS = "id, user_id, slug, wp_admin_url, wp_username, (wp_api_token IS NOT NULL) AS has_token, status, " \
               "created_at, updated_at"
PRODUCT_COLUMNS = "id, user_id, site_id, url, name, description, analysis_result, image_style, color_theme, " \
                  "image_size, created_at, updated_at"
CLUSTER_COLUMNS = "id, product_id, run_id, pillar_keyword, status, created_at"
ARTICLE_COLUMNS = "id, cluster_id, position, keyword, outline, title, content, meta_description, article_type, " \
                  "status, wp_post_id, wp_status, wp_link, wp_media_id, published_at, created_at, updated_at"
IMAGE_COLUMNS = "id, article_id, prompt, image_url, storage_path, generation_time_ms, cost_usd, created_at"


def safe_url(url: str, what: str) -> str:
    try:
        return check_url(url, get_settings().ssrf_allow_hosts)
    except UnsafeUrlError as exc:
        raise ValidationFailed(f"{what}: {exc}") from exc


def _get(conn: Connection, table: str, columns: str, row_id: str, what: str, for_update: bool = False) -> dict:
    row = conn.execute(f"SELECT {columns} FROM {table} WHERE id = %s{' FOR UPDATE' if for_update else ''}",
                       (row_id,)).fetchone()
    if row is None:
        raise NotFound(f"{what} not found")
    return row


def _update(conn: Connection, table: str, columns: str, row_id: str, changes: dict, what: str) -> dict:
    if not changes:
        return _get(conn, table, columns, row_id, what)
    values = [Jsonb(v) if isinstance(v, (dict, list)) else v for v in changes.values()]
    touch = ", updated_at = now()" if table in ("sites", "products", "articles", "schedules") else ""
    row = conn.execute(f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in changes)}{touch} WHERE id = %s "
                       f"RETURNING {columns}", (*values, row_id)).fetchone()
    if row is None:
        raise NotFound(f"{what} not found")
    return row


# ---------------------------------------------------------------- sites
def create_site(conn: Connection, principal: Principal, *, slug: str, wp_admin_url: str, wp_username: str | None,
                wp_api_token: str | None) -> dict:
    from funnel.content.wordpress import normalise_base_url  # lazy: wordpress imports httpx and nh3

    url = normalise_base_url(safe_url(wp_admin_url, "wp_admin_url"))
    token = crypto.encrypt(wp_api_token, principal.tenant_id) if wp_api_token else None
    status = "active" if token and wp_username else "provisioning"
    if conn.execute("SELECT 1 FROM sites WHERE slug = %s", (slug,)).fetchone():
        raise Conflict(f"a site with slug {slug!r} exists")
    row = conn.execute(f"INSERT INTO sites (user_id, slug, wp_admin_url, wp_username, wp_api_token, status) "
                       f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {SITE_COLUMNS}",
                       (_user(principal), slug, url, wp_username, token, status)).fetchone()
    audit.record(conn, principal, "site.create", "site", row["id"], {"slug": slug, "url": url})
    return row


def _user(principal: Principal) -> str | None:
    try:
        return str(uuid.UUID(principal.user_id))
    except (ValueError, TypeError):
        return None


def update_site(conn: Connection, principal: Principal, site_id: str, changes: dict) -> dict:
    from funnel.content.wordpress import normalise_base_url  # lazy: wordpress imports httpx and nh3

    _get(conn, "sites", "id", site_id, "site", for_update=True)
    if "wp_admin_url" in changes:
        changes["wp_admin_url"] = normalise_base_url(safe_url(changes["wp_admin_url"], "wp_admin_url"))
    if "wp_api_token" in changes:
        token = changes["wp_api_token"]
        changes["wp_api_token"] = crypto.encrypt(token, principal.tenant_id) if token else None
    row = _update(conn, "sites", SITE_COLUMNS, site_id, changes, "site")
    if row["status"] == "provisioning" and row["has_token"] and row["wp_username"]:
        row = _update(conn, "sites", SITE_COLUMNS, site_id, {"status": "active"}, "site")
    audit.record(conn, principal, "site.update", "site", site_id,
                 {"fields": sorted(changes)})  # never the token itself
    return row


def get_site(conn: Connection, site_id: str) -> dict:
    return _get(conn, "sites", SITE_COLUMNS, site_id, "site")


def list_sites(conn: Connection, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table="sites", columns=SITE_COLUMNS, cursor=cursor, limit=limit,
                       filters={})


def delete_site(conn: Connection, principal: Principal, site_id: str) -> None:
    if conn.execute("DELETE FROM sites WHERE id = %s RETURNING id", (site_id,)).fetchone() is None:
        raise NotFound("site not found")
    audit.record(conn, principal, "site.delete", "site", site_id)


def site_client(conn: Connection, tenant_id: str, site_id: str):
    """A WordPress client with the decrypted token; PermanentError when the site cannot publish."""
    from funnel.content.wordpress import WordPressSite  # lazy: wordpress imports httpx and nh3

    row = conn.execute("SELECT wp_admin_url, wp_username, wp_api_token, status FROM sites WHERE id = %s",
                       (site_id,)).fetchone()
    if row is None:
        raise PermanentError("the product's WordPress site no longer exists")
    if not row["wp_api_token"] or not row["wp_username"]:
        raise PermanentError("the WordPress site has no application password (wp_username + wp_api_token)")
    if row["status"] == "suspended":
        raise PermanentError("the WordPress site is suspended")
    return WordPressSite(row["wp_admin_url"], row["wp_username"], crypto.decrypt(row["wp_api_token"], tenant_id))


# ---------------------------------------------------------------- products
def create_product(conn: Connection, principal: Principal, fields: dict) -> dict:
    fields["url"] = safe_url(fields["url"], "url")
    if fields.get("site_id"):
        get_site(conn, str(fields["site_id"]))
        fields["site_id"] = str(fields["site_id"])
    columns = ["user_id", *fields]
    row = conn.execute(f"INSERT INTO products ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
                       f"RETURNING {PRODUCT_COLUMNS}", (_user(principal), *fields.values())).fetchone()
    audit.record(conn, principal, "product.create", "product", row["id"], {"url": row["url"]})
    return row


def update_product(conn: Connection, principal: Principal, product_id: str, changes: dict) -> dict:
    if "url" in changes:
        changes["url"] = safe_url(changes["url"], "url")
    if changes.get("site_id"):
        get_site(conn, str(changes["site_id"]))
        changes["site_id"] = str(changes["site_id"])
    row = _update(conn, "products", PRODUCT_COLUMNS, product_id, changes, "product")
    audit.record(conn, principal, "product.update", "product", product_id, {"fields": sorted(changes)})
    return row


def get_product(conn: Connection, product_id: str) -> dict:
    return _get(conn, "products", PRODUCT_COLUMNS, product_id, "product")


def list_products(conn: Connection, cursor: str | None, limit: int, site_id: str | None) -> Page:
    return keyset_page(conn, table="products", columns=PRODUCT_COLUMNS, cursor=cursor, limit=limit,
                       filters={"site_id": site_id})


def delete_product(conn: Connection, principal: Principal, product_id: str) -> None:
    if conn.execute("DELETE FROM products WHERE id = %s RETURNING id", (product_id,)).fetchone() is None:
        raise NotFound("product not found")
    audit.record(conn, principal, "product.delete", "product", product_id)


# ---------------------------------------------------------------- clusters, articles, images
def list_clusters(conn: Connection, cursor: str | None, limit: int, product_id: str | None) -> Page:
    return keyset_page(conn, table="article_clusters", columns=CLUSTER_COLUMNS, cursor=cursor, limit=limit,
                       filters={"product_id": product_id})


def get_cluster(conn: Connection, cluster_id: str) -> dict:
    cluster = _get(conn, "article_clusters", CLUSTER_COLUMNS, cluster_id, "cluster")
    cluster["articles"] = conn.execute(f"SELECT {ARTICLE_COLUMNS} FROM articles WHERE cluster_id = %s "
                                       f"ORDER BY position", (cluster_id,)).fetchall()
    return cluster


def delete_cluster(conn: Connection, principal: Principal, cluster_id: str) -> None:
    if conn.execute("DELETE FROM article_clusters WHERE id = %s RETURNING id", (cluster_id,)).fetchone() is None:
        raise NotFound("cluster not found")
    audit.record(conn, principal, "cluster.delete", "article_cluster", cluster_id)


def list_articles(conn: Connection, cursor: str | None, limit: int, cluster_id: str | None,
                  status: str | None) -> Page:
    return keyset_page(conn, table="articles", columns=ARTICLE_COLUMNS, cursor=cursor, limit=limit,
                       filters={"cluster_id": cluster_id, "status": status})


def get_article(conn: Connection, article_id: str, for_update: bool = False) -> dict:
    return _get(conn, "articles", ARTICLE_COLUMNS, article_id, "article", for_update)


def update_article(conn: Connection, principal: Principal, article_id: str, changes: dict) -> dict:
    from funnel.content.wordpress import sanitize_html  # lazy: wordpress imports httpx and nh3

    article = get_article(conn, article_id, for_update=True)
    if article["status"] == "archived":
        raise Conflict("an archived article cannot be edited")
    if "content" in changes:
        changes["content"] = sanitize_html(changes["content"])
    row = _update(conn, "articles", ARTICLE_COLUMNS, article_id, changes, "article")
    audit.record(conn, principal, "article.update", "article", article_id, {"fields": sorted(changes)})
    return row


def article_site_id(conn: Connection, article_id: str) -> str:
    row = conn.execute("SELECT p.site_id FROM articles a JOIN article_clusters c ON c.id = a.cluster_id "
                       "JOIN products p ON p.id = c.product_id WHERE a.id = %s", (article_id,)).fetchone()
    if row is None:
        raise NotFound("article not found")
    if row["site_id"] is None:
        raise ValidationFailed("the article's product has no WordPress site")
    return str(row["site_id"])


def article_slug(article_id: str) -> str:
    return f"funnel-{str(article_id).replace('-', '')[:16]}"


def publish_article(tenant_id: str, article_id: str, wp_status: str, principal: Principal | str) -> dict:
    """Create or update the article's WordPress post (idempotent on wp_post_id / slug)."""
    from funnel.content.wordpress import sanitize_html  # lazy: wordpress imports httpx and nh3

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
        row = _update(conn, "articles", ARTICLE_COLUMNS, article_id, {
            "wp_post_id": post["id"], "wp_status": post.get("status"), "wp_link": post.get("link"),
            "status": "published" if wp_status == "publish" else "draft",
            "content": sanitize_html(article["content"])}, "article")
        if wp_status == "publish":
            row = conn.execute(f"UPDATE articles SET published_at = coalesce(published_at, now()) WHERE id = %s "
                               f"RETURNING {ARTICLE_COLUMNS}", (article_id,)).fetchone()
        audit.record(conn, principal, "article.publish", "article", article_id,
                     {"wp_post_id": post["id"], "wp_status": post.get("status")})
    # The pipeline's publish step and the API's publish both come here.
    count("ArticlesPublished" if wp_status == "publish" else "ArticleDraftsPosted", tenant_id=tenant_id)
    return row


def unpublish_article(tenant_id: str, article_id: str, principal: Principal, archive: bool = False) -> dict:
    with db.tenant_transaction(tenant_id) as conn:
        article = get_article(conn, article_id)
        site = site_client(conn, tenant_id, article_site_id(conn, article_id)) if article["wp_post_id"] else None
    wp_status = None
    if site is not None and article["wp_status"] != "draft":
        wp_status = site.set_status(article["wp_post_id"], "draft").get("status")
    with db.tenant_transaction(tenant_id) as conn:
        changes: dict = {"status": "archived" if archive else "draft"}
        if wp_status:
            changes["wp_status"] = wp_status
        row = _update(conn, "articles", ARTICLE_COLUMNS, article_id, changes, "article")
        audit.record(conn, principal, "article.archive" if archive else "article.unpublish", "article", article_id)
    return row


def list_images(conn: Connection, cursor: str | None, limit: int, article_id: str | None) -> Page:
    return keyset_page(conn, table="generated_images", columns=IMAGE_COLUMNS, cursor=cursor, limit=limit,
                       filters={"article_id": article_id})


def get_image(conn: Connection, image_id: str) -> dict:
    return _get(conn, "generated_images", IMAGE_COLUMNS, image_id, "image")


def delete_image(conn: Connection, principal: Principal, image_id: str) -> None:
    if conn.execute("DELETE FROM generated_images WHERE id = %s RETURNING id", (image_id,)).fetchone() is None:
        raise NotFound("image not found")
    audit.record(conn, principal, "image.delete", "generated_image", image_id)


# ---------------------------------------------------------------- runs
def steps_total(articles_count: int, with_images: bool) -> int:
    return 2 + articles_count * (3 if with_images else 2) + 1


def check_subscription(tenant_id: str) -> None:
    with db.control_transaction() as conn:
        row = conn.execute("SELECT subscription_status FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    if row and row["subscription_status"] in ("canceled", "unpaid"):
        raise PaymentRequired(f"the subscription is {row['subscription_status']}: update billing to generate "
                              f"articles")


def create_pipeline_run(conn: Connection, principal: Principal | str, product_id: str, *, articles_count: int,
                        publish_mode: str, schedule_job_id: str | None = None) -> dict:
    """Validate that the product can run and create the run row (the caller starts it after commit)."""
    product = get_product(conn, product_id)
    if not product["site_id"]:
        raise ValidationFailed("the product has no WordPress site: set site_id first")
    site = conn.execute("SELECT wp_username, wp_api_token, status FROM sites WHERE id = %s",
                        (product["site_id"],)).fetchone()
    if site is None or not site["wp_api_token"] or not site["wp_username"]:
        raise ValidationFailed("the product's WordPress site has no application password "
                               "(set wp_username and wp_api_token)")
    if site["status"] == "suspended":
        raise ValidationFailed("the product's WordPress site is suspended")
    with_images = product["image_style"] != "none"
    config = {"product_id": str(product_id), "site_id": str(product["site_id"]), "articles_count": articles_count,
              "publish_mode": publish_mode, "with_images": with_images, "schedule_job_id": schedule_job_id,
              "executions": 0}
    created_by = _user(principal) if isinstance(principal, Principal) else None
    run = runs.create_run(conn, RUN_KIND, config, created_by, steps_total(articles_count, with_images))
    audit.record(conn, principal, "run.create", "run", run["id"], {"kind": RUN_KIND, "product_id": str(product_id)})
    return run


def _sfn():
    return aws.client("stepfunctions")


def start_execution(tenant_id: str, run_id: str) -> dict:
    """Start (or, for a resume, start again) the run's state machine execution."""
    settings = get_settings()
    if not settings.article_pipeline_arn:
        raise ValidationFailed("the article pipeline is not configured (FUNNEL_ARTICLE_PIPELINE_ARN)")
    with db.tenant_transaction(tenant_id) as conn:
        run = runs.get_run(conn, run_id, for_update=True)
        config = dict(run["config"] or {})
        config["executions"] = int(config.get("executions", 0)) + 1
        runs.update_run(conn, run_id, config=config)
    name = f"{run_id}-{config['executions']}"
    try:
        execution = _sfn().start_execution(stateMachineArn=settings.article_pipeline_arn, name=name,
                                           input=json.dumps({"tenant_id": tenant_id, "run_id": str(run_id)}))
    except Exception as exc:
        with db.tenant_transaction(tenant_id) as conn:
            runs.update_run(conn, run_id, status="failed", error_message=f"could not start the pipeline: {exc}")
        raise ServiceUnavailable("the article pipeline cannot be started; the run is failed, resume it later") \
            from exc
    with db.tenant_transaction(tenant_id) as conn:
        return runs.update_run(conn, run_id, status="running", execution_arn=execution["executionArn"],
                               error_message=None)


def start_generation(principal: Principal, product_id: str, articles_count: int, publish_mode: str) -> dict:
    check_subscription(principal.tenant_id)
    with db.tenant_transaction(principal.tenant_id) as conn:
        run = create_pipeline_run(conn, principal, product_id, articles_count=articles_count,
                                  publish_mode=publish_mode)
    return start_execution(principal.tenant_id, str(run["id"]))


def _owned_run(conn: Connection, run_id: str) -> dict:
    run = runs.get_run(conn, run_id, for_update=True)
    if run["kind"] != RUN_KIND:
        raise Conflict(f"runs of kind {run['kind']!r} are not controlled here")
    return run


def _execution_running(run: dict) -> bool:
    if not run["execution_arn"]:
        return False
    return _sfn().describe_execution(executionArn=run["execution_arn"])["status"] == "RUNNING"


def pause_run(principal: Principal, run_id: str) -> dict:
    with db.tenant_transaction(principal.tenant_id) as conn:
        run = _owned_run(conn, run_id)
        if run["status"] not in ("pending", "running"):
            raise Conflict(f"a {run['status']} run cannot be paused")
        row = runs.update_run(conn, run_id, status="paused")
        audit.record(conn, principal, "run.pause", "run", run_id)
    return row


def resume_run(principal: Principal, run_id: str) -> dict:
    """Continue a failed or paused run: finished steps are skipped (their artifacts are reused)."""
    check_subscription(principal.tenant_id)
    with db.tenant_transaction(principal.tenant_id) as conn:
        run = _owned_run(conn, run_id)
        if run["status"] not in ("failed", "paused"):
            raise Conflict(f"a {run['status']} run cannot be resumed")
        halted = (run["config"] or {}).get("halted_execution")
        still_running = (run["status"] == "paused" and halted != run["execution_arn"] and _execution_running(run))
        row = runs.update_run(conn, run_id, status="running" if still_running else "pending", error_message=None)
        job = (run["config"] or {}).get("schedule_job_id")
        if job:
            conn.execute("UPDATE schedule_jobs SET status = 'running', error_message = NULL, completed_at = NULL "
                         "WHERE id = %s", (job,))
        audit.record(conn, principal, "run.resume", "run", run_id)
    if still_running:  # the execution never stopped: its next step sees the run running again
        return row
    return start_execution(principal.tenant_id, run_id)


def cancel_run(principal: Principal, run_id: str) -> dict:
    with db.tenant_transaction(principal.tenant_id) as conn:
        run = _owned_run(conn, run_id)
        if run["status"] in ("completed", "cancelled"):
            raise Conflict(f"a {run['status']} run cannot be cancelled")
        row = runs.update_run(conn, run_id, status="cancelled")
        job = (run["config"] or {}).get("schedule_job_id")
        if job:
            conn.execute("UPDATE schedule_jobs SET status = 'failed', error_message = 'cancelled', "
                         "completed_at = now() WHERE id = %s", (job,))
        audit.record(conn, principal, "run.cancel", "run", run_id)
    if run["execution_arn"] and _execution_running(run):
        try:
            _sfn().stop_execution(executionArn=run["execution_arn"], error="Cancelled", cause="cancelled by a user")
        except Exception:  # already finished in between: the status above is what counts
            pass
    return row
