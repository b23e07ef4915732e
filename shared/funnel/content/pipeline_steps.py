"""The article pipeline's steps (statemachines/content_article_pipeline.asl.json): what each Task does.

A step gets a ``Ctx`` (the run's config loaded by ``pipeline._begin``) and returns a ``StepResult``;
``pipeline.run_step`` records it and passes on only the reference to its stored output. A step reads an earlier
step's output from its artifact (digest-checked), never from the state. SQL is in ``store_sites``,
``store_articles`` and ``store_pipeline``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from funnel import db
from funnel.content import ai, generation, service, store_articles, store_pipeline, store_sites
from funnel.content.errors import PermanentError, TransientError
from funnel.content.extract import extract
from funnel.content.images import render_png
from funnel.platform import llm, runs, storage
from funnel.platform.llm import LlmTransientError
from funnel.platform.ssrf import UnsafeUrlError, fetch
from funnel.settings import get_settings


@dataclass
class StepResult:
    output: dict[str, Any]
    summary: str
    metrics: dict[str, Any] = field(default_factory=dict)
    token_usage: dict[str, Any] | None = None
    cost_usd: float = 0.0
    llm_model: str | None = None


@dataclass
class Ctx:
    tenant_id: str
    run_id: str
    step: str
    item_key: str
    config: dict[str, Any]


def output_key(ctx: Ctx, step: str, item_key: str = "") -> str:
    """Where ``step`` of the run stores its output.json."""
    return f"{storage.step_prefix(ctx.tenant_id, ctx.run_id, step, item_key)}/output.json"


def _llm_result(answer: ai.JsonAnswer, output: dict[str, Any], summary: str, metrics: dict[str, Any]) -> StepResult:
    completion = answer.completion
    return StepResult(output={**output, "model": completion.model, "offline": completion.offline,
                              "prompt_source": answer.prompt_source},
                      summary=summary, metrics={**metrics, **completion.token_usage},
                      token_usage=completion.token_usage, cost_usd=completion.cost_usd, llm_model=completion.model)


def _read_step(ctx: Ctx, step: str, item_key: str = "") -> dict[str, Any]:
    key = output_key(ctx, step, item_key)
    with db.tenant_transaction(ctx.tenant_id) as conn:
        digest = store_pipeline.artifact_digest(conn, ctx.run_id, key)
    if digest is None:
        raise PermanentError(f"the output of {step} is missing: resume the run from that step")
    return storage.get_json(key, digest)


def analyze_product(ctx: Ctx) -> StepResult:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        product = service.get_product(conn, ctx.config["product_id"])
        system, template, source = ai.prompt_for(conn, "analyze_product")
        ai_settings = llm.tenant_ai_settings(conn)
    try:
        page = fetch(product["url"], get_settings().ssrf_allow_hosts, timeout=20)
    except UnsafeUrlError as exc:
        raise PermanentError(f"the product URL is refused: {exc}") from exc
    except Exception as exc:  # timeouts, connection resets
        raise TransientError(f"fetching {product['url']} failed: {type(exc).__name__}: {exc}") from exc
    if page.status_code == 429 or page.status_code >= 500:
        raise TransientError(f"the product page answered {page.status_code}")
    if page.status_code >= 400:
        raise PermanentError(f"the product page answered {page.status_code}")
    content = extract(page.text)
    values = {"url": product["url"], "page_title": content["title"], "page_text": content["text"][:8000]}
    answer = ai.ask_json("analyze_product", system, template, values, ai_settings, source,
                         offline=ai.offline_analysis(product["url"], content["title"], content["text"]))
    data = answer.data
    analysis = {"product_name": str(data.get("product_name") or content["title"] or product["url"])[:200],
                "summary": str(data.get("summary", ""))[:2000], "persona": data.get("persona", ""),
                "keywords": [str(k)[:100] for k in (data.get("keywords") or [])][:20],
                "model": answer.completion.model, "offline": answer.completion.offline}
    with db.tenant_transaction(ctx.tenant_id) as conn:
        changes = {"analysis_result": analysis}
        if not product["name"]:
            changes["name"] = analysis["product_name"]
        if not product["description"]:
            changes["description"] = analysis["summary"]
        service.found(store_sites.update_product(conn, ctx.config["product_id"], changes), "product")
    return _llm_result(answer, {"page": {"url": page.url, "title": content["title"], "text": content["text"]},
                                "analysis": analysis},
                       f"{analysis['product_name']}: {len(analysis['keywords'])} keywords",
                       {"page_chars": len(content["text"])})


def plan_cluster(ctx: Ctx) -> StepResult:
    analysis = _read_step(ctx, "analyze_product")["analysis"]
    count = int(ctx.config["articles_count"])
    with db.tenant_transaction(ctx.tenant_id) as conn:
        system, template, source = ai.prompt_for(conn, "plan_cluster")
        ai_settings = llm.tenant_ai_settings(conn)
    values = {"product_name": analysis["product_name"], "summary": analysis["summary"],
              "persona": analysis["persona"], "keywords": ", ".join(analysis["keywords"]), "articles_count": count}
    answer = ai.ask_json("plan_cluster", system, template, values, ai_settings, source,
                         offline=ai.offline_plan(analysis["product_name"], analysis["keywords"], count))
    planned = [a for a in (answer.data.get("articles") or []) if isinstance(a, dict) and a.get("title")][:count]
    if not planned:
        raise LlmTransientError(f"{answer.completion.model} planned no articles", model=answer.completion.model)
    pillar = str(answer.data.get("pillar_keyword")
                 or (analysis["keywords"][0] if analysis["keywords"] else analysis["product_name"]))[:255]
    with db.tenant_transaction(ctx.tenant_id) as conn:
        cluster = store_articles.insert_cluster(conn, ctx.config["product_id"], ctx.run_id, pillar)
        ids = []
        for position, item in enumerate(planned):
            kind = item.get("article_type")
            article_type = str(kind) if kind in ("article", "faq", "glossary") else "article"
            outline = [str(h)[:300] for h in (item.get("outline") or [])][:20]
            row = store_articles.insert_article(conn, cluster_id=str(cluster["id"]), position=position,
                                                keyword=str(item.get("keyword") or pillar)[:255], outline=outline,
                                                title=str(item["title"])[:255], article_type=article_type)
            ids.append(str(row["id"]))
        if len(ids) != count:  # fewer articles than asked: the progress bar follows the plan
            runs.update_run(conn, ctx.run_id,
                            steps_total=generation.steps_total(len(ids), ctx.config.get("with_images", False)))
    return _llm_result(answer, {"cluster_id": str(cluster["id"]), "pillar_keyword": pillar, "articles": planned,
                                "article_ids": ids},
                       f"pillar {pillar!r}, {len(ids)} articles",
                       {"articles": len(ids), "article_ids": ids, "cluster_id": str(cluster["id"])})


def write_article(ctx: Ctx) -> StepResult:
    from funnel.content.wordpress import sanitize_html  # lazy: wordpress imports httpx and nh3

    analysis = _read_step(ctx, "analyze_product")["analysis"]
    with db.tenant_transaction(ctx.tenant_id) as conn:
        article = service.get_article(conn, ctx.item_key)
        cluster = store_articles.get_cluster(conn, str(article["cluster_id"]))
        if cluster is None:
            raise PermanentError("the article's cluster no longer exists")
        product = service.get_product(conn, ctx.config["product_id"])
        system, template, source = ai.prompt_for(conn, "write_article")
        ai_settings = llm.tenant_ai_settings(conn)
    outline = article["outline"] or []
    values = {"product_name": analysis["product_name"], "url": product["url"], "persona": analysis["persona"],
              "pillar_keyword": cluster["pillar_keyword"] or "", "title": article["title"],
              "keyword": article["keyword"] or "", "outline": "\n".join(f"- {h}" for h in outline)}
    answer = ai.ask_json("write_article", system, template, values, ai_settings, source,
                         offline=ai.offline_article(article["title"], article["keyword"] or "", outline,
                                                    analysis["product_name"], product["url"]))
    html = sanitize_html(str(answer.data.get("html") or ""))
    if not html.strip():
        raise LlmTransientError(f"{answer.completion.model} wrote an empty article", model=answer.completion.model)
    title = str(answer.data.get("title") or article["title"])[:255]
    meta = str(answer.data.get("meta_description") or "")[:160]
    with db.tenant_transaction(ctx.tenant_id) as conn:
        service.found(store_articles.update_article(
            conn, ctx.item_key, {"title": title, "content": html, "meta_description": meta}), "article")
    needs_image = product["image_style"] != "none"
    return _llm_result(answer, {"article_id": ctx.item_key, "title": title, "meta_description": meta, "html": html},
                       title, {"chars": len(html), "needs_image": needs_image, "article_id": ctx.item_key})


def generate_image(ctx: Ctx) -> StepResult:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        article = service.get_article(conn, ctx.item_key)
        product = service.get_product(conn, ctx.config["product_id"])
        system, template, source = ai.prompt_for(conn, "generate_image")
        ai_settings = llm.tenant_ai_settings(conn)
    started = time.perf_counter()
    values = {"title": article["title"], "image_style": product["image_style"],
              "color_theme": product["color_theme"], "image_size": product["image_size"]}
    answer = ai.ask_json("generate_image", system, template, values, ai_settings, source,
                         offline=ai.offline_image_prompt(article["title"], product["image_style"],
                                                         product["color_theme"]))
    prompt = str(answer.data.get("prompt") or "")[:4000]
    alt = str(answer.data.get("alt") or article["title"])[:300]
    png = render_png(product["image_size"], product["color_theme"], prompt or article["title"])
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    with db.tenant_transaction(ctx.tenant_id) as conn:
        artifact = runs.write_file(conn, ctx.tenant_id, ctx.run_id, ctx.step, "cover.png", png, "image/png",
                                   item_key=ctx.item_key)
        store_articles.delete_images_of_article(conn, ctx.item_key)  # a retried step keeps one image
        image = store_articles.insert_image(conn, article_id=ctx.item_key, prompt=prompt,
                                            storage_path=artifact["file_path"], generation_time_ms=elapsed_ms,
                                            cost_usd=answer.completion.cost_usd)
    return _llm_result(answer, {"article_id": ctx.item_key, "image_id": str(image["id"]), "prompt": prompt,
                                "alt": alt, "storage_path": artifact["file_path"], "digest": artifact["digest"]},
                       f"cover image {product['image_size']}", {"bytes": len(png), "image_ms": elapsed_ms})


def publish(ctx: Ctx) -> StepResult:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        article = service.get_article(conn, ctx.item_key)
        site = service.site_client(conn, ctx.tenant_id, ctx.config["site_id"])
        image = store_articles.latest_image_of_article(conn, ctx.item_key)
    media_id = article["wp_media_id"]
    if image is not None and media_id is None:
        image_output = _read_step(ctx, "generate_image", ctx.item_key)
        media = site.upload_media(f"{service.article_slug(ctx.item_key)}.png", storage.get_bytes(image["storage_path"]),
                                  "image/png", image_output.get("alt", ""))
        media_id = media["id"]
        with db.tenant_transaction(ctx.tenant_id) as conn:  # remembered at once: a retry does not upload twice
            store_articles.set_media_id(conn, ctx.item_key, media_id)
            store_articles.set_image_url(conn, str(image["id"]), media.get("source_url"))
    wp_status = "publish" if ctx.config.get("publish_mode") == "publish" else "draft"
    row = service.publish_article(ctx.tenant_id, ctx.item_key, wp_status, "pipeline")
    return StepResult(output={"article_id": ctx.item_key, "wp_post_id": row.wp_post_id,
                              "wp_status": row.wp_status, "wp_link": row.wp_link, "wp_media_id": media_id},
                      summary=f"WordPress post {row.wp_post_id} ({row.wp_status})",
                      metrics={"wp_post_id": row.wp_post_id})


def finalize(ctx: Ctx) -> StepResult:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        counts = store_articles.publication_counts(conn, ctx.run_id)
        store_articles.complete_clusters_of_run(conn, ctx.run_id)
    return StepResult(output={"published": counts["published"], "articles": counts["total"]},
                      summary=f"{counts['published']} of {counts['total']} articles on WordPress",
                      metrics={"published": counts["published"]})


STEPS: dict[str, Callable[[Ctx], StepResult]] = {
    "analyze_product": analyze_product, "plan_cluster": plan_cluster, "write_article": write_article,
    "generate_image": generate_image, "publish": publish, "finalize": finalize}


