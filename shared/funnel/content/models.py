"""Response models of the content API (sites, products, clusters, articles, images, schedules, runs).

Each model is exactly what the store modules' SQL returns (``funnel.content.store_*``; columns in
``migrations/tenant/versions/content_0001_tables.py``), validated by the services: a nullable column is a
required key with a nullable value. ``Out`` forbids undeclared keys, so a new column fails the suite
until it is declared here.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from funnel.api.contract import Out
from funnel.platform.models import RunRecord

SiteStatus = Literal["provisioning", "active", "suspended"]
ImageStyle = Literal["none", "illustration", "photo", "flat", "3d", "watercolor"]
ColorTheme = Literal["auto", "blue", "green", "warm", "mono"]
ClusterStatus = Literal["pending", "generating", "completed"]
ArticleType = Literal["article", "faq", "glossary"]
ArticleStatus = Literal["draft", "published", "archived"]
PublishMode = Literal["draft", "publish"]
ScheduleJobStatus = Literal["queued", "running", "completed", "failed"]


# ---------------------------------------------------------------- sites
class Site(Out):
    """A WordPress site articles are published to. The application password is never returned."""

    id: UUID
    user_id: UUID | None = Field(description="who created the site (null for API keys or removed users)")
    slug: str
    wp_admin_url: str = Field(description="the WordPress site's base URL (normalised)")
    wp_username: str | None
    has_token: bool = Field(description="whether an application password (wp_api_token) is stored")
    status: SiteStatus = Field(description="`active` once wp_username and wp_api_token are both set")
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- products
class ProductAnalysis(Out):
    """What the pipeline's first step learnt from the product page."""

    product_name: str
    summary: str
    persona: Any = Field(description="the target reader as the model described it (usually a string)")
    keywords: list[str] = Field(description="up to 20 keywords the articles are planned around")
    model: str = Field(description="the LLM that analysed the page")
    offline: bool = Field(description="true when the offline responder answered (no LLM was called)")


class Product(Out):
    """A product (a URL) articles are written about."""

    id: UUID
    user_id: UUID | None
    site_id: UUID | None = Field(description="the WordPress site its articles go to; needed to generate")
    url: str
    name: str | None = Field(description="filled from the page by the first generation when not given")
    description: str | None
    analysis_result: ProductAnalysis | None = Field(description="null until a generation has analysed the page")
    image_style: ImageStyle = Field(description="`none` generates no images")
    color_theme: ColorTheme
    image_size: str = Field(description="WIDTHxHEIGHT in pixels, e.g. `1200x630`")
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- runs
class ArticlePipelineRun(RunRecord):
    """The article pipeline run a generation, resume, pause or cancel leaves; follow it with
    GET /v1/runs/{id} (which adds progress)."""

    kind: Literal["article_pipeline"]
    config: dict[str, Any] | None = Field(description="the run's input: product_id, site_id, articles_count, "
                                                      "publish_mode, with_images, schedule_job_id, executions")


# ---------------------------------------------------------------- clusters, articles, images
class Cluster(Out):
    """A pillar keyword and the articles planned around it (one per generation run)."""

    id: UUID
    product_id: UUID
    run_id: UUID | None = Field(description="the run that planned it (null once that run is deleted)")
    pillar_keyword: str | None
    status: ClusterStatus
    created_at: datetime


class Article(Out):
    id: UUID
    cluster_id: UUID
    position: int = Field(description="order within the cluster, from 0")
    keyword: str | None
    outline: list[str] | None = Field(description="the planned headings")
    title: str | None
    content: str | None = Field(description="sanitised HTML; null until written")
    meta_description: str | None
    article_type: ArticleType
    status: ArticleStatus
    wp_post_id: int | None = Field(description="the WordPress post, once published (or pushed as a draft)")
    wp_status: str | None = Field(description="the post's status in WordPress, e.g. `publish`, `draft`")
    wp_link: str | None = Field(description="the post's public link in WordPress")
    wp_media_id: int | None = Field(description="the featured image uploaded to WordPress")
    published_at: datetime | None = Field(description="first publication (kept when unpublished)")
    created_at: datetime
    updated_at: datetime


class ClusterDetail(Cluster):
    articles: list[Article] = Field(description="the cluster's articles by position")


class ArticleImage(Out):
    """A generated (featured) image of an article."""

    id: UUID
    article_id: UUID
    prompt: str | None
    image_url: str | None
    storage_path: str | None = Field(description="the object key of the stored image")
    generation_time_ms: int | None
    cost_usd: Decimal = Field(description="what generating it cost, in USD (a decimal string)")
    created_at: datetime


class ArticleImageDetail(ArticleImage):
    download_url: str | None = Field(description="a presigned URL of the stored image, valid 15 minutes; "
                                                 "null when nothing is stored")


# ---------------------------------------------------------------- schedules
class ContentSchedule(Out):
    """A cron schedule that generates articles for a product."""

    id: UUID
    user_id: UUID | None
    site_id: UUID
    product_id: UUID
    cron_expression: str = Field(description="5-field cron (minute hour day month weekday) in `timezone`")
    timezone: str = Field(description="IANA time zone, e.g. `Asia/Tokyo`")
    articles_per_run: int
    publish_mode: PublishMode
    is_active: bool
    next_run_at: datetime | None = Field(description="the next firing; null while inactive")
    scheduler_name: str | None = Field(description="the EventBridge Scheduler schedule's name")
    created_at: datetime
    updated_at: datetime


class ScheduleJob(Out):
    """One firing of a schedule (at most one per scheduled time)."""

    id: UUID
    schedule_id: UUID
    scheduled_for: datetime
    run_id: UUID | None = Field(description="the generation run it started; null when it failed to start")
    status: ScheduleJobStatus
    started_at: datetime | None
    completed_at: datetime | None
    articles_generated: int | None
    error_message: str | None
    created_at: datetime


class ScheduleJobList(Out):
    items: list[ScheduleJob] = Field(description="the latest 100 firings, newest scheduled time first")
