"""Content API: sites, products, clusters, articles, images, schedules, generation runs."""
from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from funnel import db
from funnel.api.contract import Page, problem_response, problems
from funnel.api.deps import CurrentPrincipal, Cursor, Limit, StrictModel, Writer, page_of
from funnel.billing.limits import PLAN_LIMIT_402
from funnel.content import generation, schedules, service
from funnel.content.models import (
    Article,
    ArticleImage,
    ArticleImageDetail,
    ArticlePipelineRun,
    Cluster,
    ClusterDetail,
    ColorTheme,
    ContentSchedule,
    ImageStyle,
    Product,
    ScheduleJobList,
    Site,
)
from funnel.platform.errors import SENDING_FORBIDDEN

router = APIRouter(prefix="/v1")
Slug = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
# WordPress calls (publish, unpublish, archive): timeouts, 429 and 5xx are TransientError (502).
PIPELINE_UNAVAILABLE = "the pipeline (Step Functions) cannot be reached; the run is marked failed: resume it later"
WORDPRESS_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    502: problem_response(502, "WordPress did not answer, or answered 429/5xx; try again")}


class SiteBody(StrictModel):
    slug: str = Slug
    wp_admin_url: str = Field(min_length=8, max_length=500, description="the WordPress site's base URL")
    wp_username: str | None = Field(default=None, min_length=1, max_length=200)
    wp_api_token: str | None = Field(default=None, min_length=8, max_length=500,
                                     description="an Application Password; write-only, stored encrypted")


class SitePatch(StrictModel):
    wp_admin_url: str | None = Field(default=None, min_length=8, max_length=500)
    wp_username: str | None = Field(default=None, min_length=1, max_length=200)
    wp_api_token: str | None = Field(default=None, min_length=8, max_length=500)
    status: Literal["provisioning", "active", "suspended"] | None = None


@router.post("/sites", status_code=201, tags=["content"],
             responses=problems(409, conflict="a site with this slug exists"))
def create_site(body: SiteBody, principal: Writer) -> Site:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return service.create_site(conn, principal, **body.model_dump())


@router.get("/sites", tags=["content"])
def list_sites(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None) -> Page[Site]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Site, service.list_sites(conn, cursor, limit))


@router.get("/sites/{site_id}", tags=["content"], responses=problems(404))
def get_site(site_id: UUID, principal: CurrentPrincipal) -> Site:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return service.get_site(conn, str(site_id))


@router.patch("/sites/{site_id}", tags=["content"], responses=problems(404))
def update_site(site_id: UUID, body: SitePatch, principal: Writer) -> Site:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return service.update_site(conn, principal, str(site_id), body.model_dump(exclude_unset=True))


@router.delete("/sites/{site_id}", status_code=204, tags=["content"], responses=problems(404))
def delete_site(site_id: UUID, principal: Writer) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        service.delete_site(conn, principal, str(site_id))


class ProductBody(StrictModel):
    url: str = Field(min_length=4, max_length=500)
    site_id: UUID | None = None
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=5000)
    image_style: ImageStyle = "illustration"
    color_theme: ColorTheme = "auto"
    image_size: str = Field(default="1200x630", pattern=r"^[1-9][0-9]{1,3}x[1-9][0-9]{1,3}$")


class ProductPatch(StrictModel):
    url: str | None = Field(default=None, min_length=4, max_length=500)
    site_id: UUID | None = None
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=5000)
    image_style: ImageStyle | None = None
    color_theme: ColorTheme | None = None
    image_size: str | None = Field(default=None, pattern=r"^[1-9][0-9]{1,3}x[1-9][0-9]{1,3}$")


@router.post("/products", status_code=201, tags=["content"],
             responses=problems(404, not_found="`site_id` names no site"))
def create_product(body: ProductBody, principal: Writer) -> Product:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return service.create_product(conn, principal, body.model_dump())


@router.get("/products", tags=["content"])
def list_products(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                  site_id: UUID | None = None) -> Page[Product]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Product, service.list_products(conn, cursor, limit, str(site_id) if site_id else None))


@router.get("/products/{product_id}", tags=["content"], responses=problems(404))
def get_product(product_id: UUID, principal: CurrentPrincipal) -> Product:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Product.model_validate(service.get_product(conn, str(product_id)))


@router.patch("/products/{product_id}", tags=["content"],
              responses=problems(404, not_found="the product, or the `site_id` given, is not found"))
def update_product(product_id: UUID, body: ProductPatch, principal: Writer) -> Product:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return service.update_product(conn, principal, str(product_id), body.model_dump(exclude_unset=True))


@router.delete("/products/{product_id}", status_code=204, tags=["content"], responses=problems(404))
def delete_product(product_id: UUID, principal: Writer) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        service.delete_product(conn, principal, str(product_id))


class GenerateBody(StrictModel):
    articles_count: int = Field(default=3, ge=1, le=20)
    publish_mode: Literal["draft", "publish"] = "draft"


@router.post("/products/{product_id}/generate", status_code=202, tags=["content"],
             responses=problems(402, 403, 404, 503, payment_required=PLAN_LIMIT_402,
                                unavailable=PIPELINE_UNAVAILABLE,
                                forbidden=SENDING_FORBIDDEN + " (with `publish_mode` publish)"))
def generate(product_id: UUID, body: GenerateBody, principal: Writer) -> ArticlePipelineRun:
    """Start the article pipeline for a product; follow it with GET /v1/runs/{id} (progress).
    422 when the product has no WordPress site, or its site has no application password or is suspended."""
    return generation.start_generation(principal, str(product_id), body.articles_count, body.publish_mode)


@router.post("/runs/{run_id}/resume", tags=["runs"],
             responses=problems(402, 404, 409, 503, payment_required="the subscription is canceled or unpaid",
                                conflict="the run is not an article pipeline run, or is neither failed nor paused",
                                unavailable=PIPELINE_UNAVAILABLE))
def resume_run(run_id: UUID, principal: Writer) -> ArticlePipelineRun:
    """Continue a failed or paused article pipeline run; finished steps are not run again."""
    return generation.resume_run(principal, str(run_id))


@router.post("/runs/{run_id}/pause", tags=["runs"],
             responses=problems(404, 409, conflict="the run is not an article pipeline run, or is neither "
                                                   "pending nor running"))
def pause_run(run_id: UUID, principal: Writer) -> ArticlePipelineRun:
    return generation.pause_run(principal, str(run_id))


@router.post("/runs/{run_id}/cancel", tags=["runs"],
             responses=problems(404, 409, conflict="the run is not an article pipeline run, or is already "
                                                   "completed or cancelled"))
def cancel_run(run_id: UUID, principal: Writer) -> ArticlePipelineRun:
    return generation.cancel_run(principal, str(run_id))


@router.get("/clusters", tags=["content"])
def list_clusters(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                  product_id: UUID | None = None) -> Page[Cluster]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Cluster, service.list_clusters(conn, cursor, limit,
                                                      str(product_id) if product_id else None))


@router.get("/clusters/{cluster_id}", tags=["content"], responses=problems(404))
def get_cluster(cluster_id: UUID, principal: CurrentPrincipal) -> ClusterDetail:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return service.get_cluster(conn, str(cluster_id))


@router.delete("/clusters/{cluster_id}", status_code=204, tags=["content"], responses=problems(404))
def delete_cluster(cluster_id: UUID, principal: Writer) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        service.delete_cluster(conn, principal, str(cluster_id))


class ArticlePatch(StrictModel):
    title: str | None = Field(default=None, min_length=1, max_length=255)
    content: str | None = Field(default=None, max_length=500_000)
    meta_description: str | None = Field(default=None, max_length=160)
    article_type: Literal["article", "faq", "glossary"] | None = None


class PublishBody(StrictModel):
    mode: Literal["draft", "publish"] = "publish"


@router.get("/articles", tags=["content"])
def list_articles(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                  cluster_id: UUID | None = None,
                  status: Literal["draft", "published", "archived"] | None = Query(default=None)
                  ) -> Page[Article]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Article, service.list_articles(conn, cursor, limit,
                                                      str(cluster_id) if cluster_id else None, status))


@router.get("/articles/{article_id}", tags=["content"], responses=problems(404))
def get_article(article_id: UUID, principal: CurrentPrincipal) -> Article:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Article.model_validate(service.get_article(conn, str(article_id)))


@router.patch("/articles/{article_id}", tags=["content"],
              responses=problems(404, 409, conflict="the article is archived"))
def update_article(article_id: UUID, body: ArticlePatch, principal: Writer) -> Article:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return service.update_article(conn, principal, str(article_id), body.model_dump(exclude_unset=True))


@router.post("/articles/{article_id}/publish", tags=["content"],
             responses={**problems(403, 404, 409, conflict="the article is archived",
                                   forbidden=SENDING_FORBIDDEN + " (with `mode` publish)"), **WORDPRESS_UNAVAILABLE})
def publish_article(article_id: UUID, body: PublishBody, principal: Writer) -> Article:
    """Create or update the article's WordPress post (`mode`: publish, or push as a draft).
    422 when the article has no content, its product no site, or WordPress refuses the post."""
    return service.publish_article(principal.tenant_id, str(article_id), body.mode, principal)


@router.post("/articles/{article_id}/unpublish", tags=["content"], responses={**problems(404), **WORDPRESS_UNAVAILABLE})
def unpublish_article(article_id: UUID, principal: Writer) -> Article:
    """Back to draft, here and (when posted) in WordPress."""
    return service.unpublish_article(principal.tenant_id, str(article_id), principal)


@router.post("/articles/{article_id}/archive", tags=["content"], responses={**problems(404), **WORDPRESS_UNAVAILABLE})
def archive_article(article_id: UUID, principal: Writer) -> Article:
    """Archive (no more edits or publishing); a WordPress post goes back to draft."""
    return service.unpublish_article(principal.tenant_id, str(article_id), principal, archive=True)


@router.get("/images", tags=["content"])
def list_images(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
                article_id: UUID | None = None) -> Page[ArticleImage]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(ArticleImage, service.list_images(conn, cursor, limit,
                                                         str(article_id) if article_id else None))


@router.get("/images/{image_id}", tags=["content"], responses=problems(404))
def get_image(image_id: UUID, principal: CurrentPrincipal) -> ArticleImageDetail:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return service.get_image(conn, str(image_id))


@router.delete("/images/{image_id}", status_code=204, tags=["content"], responses=problems(404))
def delete_image(image_id: UUID, principal: Writer) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        service.delete_image(conn, principal, str(image_id))


class ScheduleBody(StrictModel):
    site_id: UUID
    product_id: UUID
    cron_expression: str = Field(min_length=9, max_length=100, examples=["0 9 * * 1,3,5"])
    timezone: str = Field(default="Asia/Tokyo", max_length=64)
    articles_per_run: int = Field(default=1, ge=1, le=20)
    publish_mode: Literal["draft", "publish"] = "draft"
    is_active: bool = True


class SchedulePatch(StrictModel):
    site_id: UUID | None = None
    product_id: UUID | None = None
    cron_expression: str | None = Field(default=None, min_length=9, max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    articles_per_run: int | None = Field(default=None, ge=1, le=20)
    publish_mode: Literal["draft", "publish"] | None = None
    is_active: bool | None = None


@router.post("/schedules", status_code=201, tags=["content"],
             responses=problems(404, not_found="`site_id` or `product_id` is not found"))
def create_schedule(body: ScheduleBody, principal: Writer) -> ContentSchedule:
    return schedules.create_schedule(principal, body.model_dump())


@router.get("/schedules", tags=["content"])
def list_schedules(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None) -> Page[ContentSchedule]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(ContentSchedule, schedules.list_schedules(conn, cursor, limit))


@router.get("/schedules/{schedule_id}", tags=["content"], responses=problems(404))
def get_schedule(schedule_id: UUID, principal: CurrentPrincipal) -> ContentSchedule:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return schedules.get_schedule(conn, str(schedule_id))


@router.get("/schedules/{schedule_id}/jobs", tags=["content"], responses=problems(404))
def list_schedule_jobs(schedule_id: UUID, principal: CurrentPrincipal) -> ScheduleJobList:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return schedules.list_jobs(conn, str(schedule_id))


@router.patch("/schedules/{schedule_id}", tags=["content"],
               responses=problems(404, not_found="the schedule, or the `site_id` / `product_id` given, is not found"))
def update_schedule(schedule_id: UUID, body: SchedulePatch, principal: Writer) -> ContentSchedule:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return schedules.update_schedule(principal, str(schedule_id), changes)


@router.delete("/schedules/{schedule_id}", status_code=204, tags=["content"], responses=problems(404))
def delete_schedule(schedule_id: UUID, principal: Writer) -> None:
    schedules.delete_schedule(principal, str(schedule_id))
