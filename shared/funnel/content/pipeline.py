"""The article pipeline's steps (statemachines/article_pipeline.asl.json).

Each Task calls :func:`handle` with ``{"step", "tenant_id", "run_id"[, "article_id"]}``.
A step:
1. stops with ``RunHalted`` when the run was paused or cancelled;
2. returns its stored reference when it already completed (a resumed run
   reuses artifacts, so finished articles are not redone);
3. records ``start_step`` (a re-start counts as a retry), does its work,
   writes ``storage/{tenant}/{run}/{step}/output.json`` with its sha256 and
   returns only ``{output_path, output_digest, summary, metrics}``.
A failure is recorded on the step (``fail_step``) and re-raised with its class
name, which the state machine's Retry/Catch match on.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from funnel import db
from funnel.content import ai, service
from funnel.content.errors import PermanentError, RunHalted, TransientError
from funnel.content.extract import extract
from funnel.content.images import render_png
from funnel.notifications.service import dispatch_pending, notify
from funnel.platform import runs, storage
from funnel.platform.errors import NotFound
from funnel.platform.llm import LlmTransientError
from funnel.platform.ssrf import UnsafeUrlError, fetch
from funnel.settings import get_settings

log = logging.getLogger("funnel.content.pipeline")


@dataclass
class StepResult:
    output: dict
    summary: str
    metrics: dict = field(default_factory=dict)
    token_usage: dict | None = None
    cost_usd: float = 0.0
    llm_model: str | None = None


@dataclass
class Ctx:
    tenant_id: str
    run_id: str
    step: str
    item_key: str
    config: dict


def _stored_reference(ctx: Ctx) -> dict | None:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        if runs.step_status(conn, ctx.run_id, ctx.step, ctx.item_key) != "completed":
            return None
        key = f"{storage.step_prefix(ctx.tenant_id, ctx.run_id, ctx.step, ctx.item_key)}/output.json"
        row = conn.execute("SELECT file_path, digest FROM artifacts WHERE run_id = %s AND file_path = %s",
                           (ctx.run_id, key)).fetchone()
    if row is None:
        return None
    output = storage.get_json(row["file_path"], row["digest"])
    return {"output_path": row["file_path"], "output_digest": row["digest"], "summary": output.get("_summary", ""),
            "metrics": {**output.get("_metrics", {}), "reused": True}}


def _record_halt_if_paused(conn, run: dict) -> None:
    """Under the run's row lock: this execution stops because the run is paused. A resume then either came first
    (the run is running again and the execution goes on) or sees this and starts a new execution, however long
    Step Functions still reports the stopping one as RUNNING."""
    if run["status"] == "paused":
        runs.update_run(conn, str(run["id"]), config={**(run["config"] or {}),
                                                      "halted_execution": run["execution_arn"]})


def _begin(ctx: Ctx) -> None:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        run = runs.get_run(conn, ctx.run_id, for_update=True)
        _record_halt_if_paused(conn, run)
        if run["status"] not in ("paused", "cancelled"):
            if run["status"] in ("pending", "failed"):
                runs.update_run(conn, ctx.run_id, status="running")
            ctx.config = run["config"] or {}
            runs.start_step(conn, ctx.run_id, ctx.step, ctx.item_key)
    if run["status"] in ("paused", "cancelled"):  # raised after the commit, which keeps the recorded halt
        raise RunHalted(f"the run is {run['status']}")


def _finish(ctx: Ctx, result: StepResult) -> dict:
    output = {**result.output, "_summary": result.summary, "_metrics": result.metrics}
    with db.tenant_transaction(ctx.tenant_id) as conn:
        reference = runs.write_output(conn, ctx.tenant_id, ctx.run_id, ctx.step, output, summary=result.summary,
                                      metrics=result.metrics, item_key=ctx.item_key)
        runs.complete_step(conn, ctx.run_id, ctx.step, ctx.item_key, token_usage=result.token_usage,
                           cost_usd=result.cost_usd, llm_model=result.llm_model)
    return reference


def _fail(ctx: Ctx, exc: Exception) -> None:
    try:
        with db.tenant_transaction(ctx.tenant_id) as conn:
            runs.fail_step(conn, ctx.run_id, ctx.step, ctx.item_key, f"{type(exc).__name__}: {exc}")
    except Exception:  # the original error matters more
        log.exception("could not record the failure of %s", ctx.step)


def _llm_result(answer: ai.JsonAnswer, output: dict, summary: str, metrics: dict) -> StepResult:
    completion = answer.completion
    return StepResult(output={**output, "model": completion.model, "offline": completion.offline,
                              "prompt_source": answer.prompt_source},
                      summary=summary, metrics={**metrics, **completion.token_usage},
                      token_usage=completion.token_usage, cost_usd=completion.cost_usd, llm_model=completion.model)


def _read_step(ctx: Ctx, step: str, item_key: str = "") -> dict:
    key = f"{storage.step_prefix(ctx.tenant_id, ctx.run_id, step, item_key)}/output.json"
    with db.tenant_transaction(ctx.tenant_id) as conn:
        row = conn.execute("SELECT digest FROM artifacts WHERE run_id = %s AND file_path = %s",
                           (ctx.run_id, key)).fetchone()
    if row is None:
        raise PermanentError(f"the output of {step} is missing: resume the run from that step")
    return storage.get_json(key, row["digest"])


# ---------------------------------------------------------------- steps
def analyze_product(ctx: Ctx) -> StepResult:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        product = service.get_product(conn, ctx.config["product_id"])
        system, template, source = ai.prompt_for(conn, "analyze_product")
        ai_settings = ai.tenant_ai_settings(conn)
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
        service._update(conn, "products", "id", ctx.config["product_id"], changes, "product")
    return _llm_result(answer, {"page": {"url": page.url, "title": content["title"], "text": content["text"]},
                                "analysis": analysis},
                       f"{analysis['product_name']}: {len(analysis['keywords'])} keywords",
                       {"page_chars": len(content["text"])})


def plan_cluster(ctx: Ctx) -> StepResult:
    analysis = _read_step(ctx, "analyze_product")["analysis"]
    count = int(ctx.config["articles_count"])
    with db.tenant_transaction(ctx.tenant_id) as conn:
        system, template, source = ai.prompt_for(conn, "plan_cluster")
        ai_settings = ai.tenant_ai_settings(conn)
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
        cluster = conn.execute("INSERT INTO article_clusters (product_id, run_id, pillar_keyword, status) "
                               "VALUES (%s, %s, %s, 'generating') RETURNING id",
                               (ctx.config["product_id"], ctx.run_id, pillar)).fetchone()
        ids = []
        for position, item in enumerate(planned):
            article_type = item.get("article_type") if item.get("article_type") in ("article", "faq",
                                                                                   "glossary") else "article"
            outline = [str(h)[:300] for h in (item.get("outline") or [])][:20]
            row = conn.execute("INSERT INTO articles (cluster_id, position, keyword, outline, title, article_type) "
                               "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                               (cluster["id"], position, str(item.get("keyword") or pillar)[:255],
                                service.Jsonb(outline), str(item["title"])[:255], article_type)).fetchone()
            ids.append(str(row["id"]))
        if len(ids) != count:  # fewer articles than asked: the progress bar follows the plan
            conn.execute("UPDATE runs SET steps_total = %s WHERE id = %s",
                         (service.steps_total(len(ids), ctx.config.get("with_images", False)), ctx.run_id))
    return _llm_result(answer, {"cluster_id": str(cluster["id"]), "pillar_keyword": pillar, "articles": planned,
                                "article_ids": ids},
                       f"pillar {pillar!r}, {len(ids)} articles",
                       {"articles": len(ids), "article_ids": ids, "cluster_id": str(cluster["id"])})


def write_article(ctx: Ctx) -> StepResult:
    from funnel.content.wordpress import sanitize_html  # lazy: wordpress imports httpx and nh3

    analysis = _read_step(ctx, "analyze_product")["analysis"]
    with db.tenant_transaction(ctx.tenant_id) as conn:
        article = service.get_article(conn, ctx.item_key)
        cluster = conn.execute("SELECT pillar_keyword FROM article_clusters WHERE id = %s",
                               (article["cluster_id"],)).fetchone()
        product = service.get_product(conn, ctx.config["product_id"])
        system, template, source = ai.prompt_for(conn, "write_article")
        ai_settings = ai.tenant_ai_settings(conn)
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
        service._update(conn, "articles", "id", ctx.item_key,
                        {"title": title, "content": html, "meta_description": meta}, "article")
    needs_image = product["image_style"] != "none"
    return _llm_result(answer, {"article_id": ctx.item_key, "title": title, "meta_description": meta, "html": html},
                       title, {"chars": len(html), "needs_image": needs_image, "article_id": ctx.item_key})


def generate_image(ctx: Ctx) -> StepResult:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        article = service.get_article(conn, ctx.item_key)
        product = service.get_product(conn, ctx.config["product_id"])
        system, template, source = ai.prompt_for(conn, "generate_image")
        ai_settings = ai.tenant_ai_settings(conn)
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
        conn.execute("DELETE FROM generated_images WHERE article_id = %s", (ctx.item_key,))
        image = conn.execute("INSERT INTO generated_images (article_id, prompt, storage_path, generation_time_ms, "
                             "cost_usd) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                             (ctx.item_key, prompt, artifact["file_path"], elapsed_ms,
                              answer.completion.cost_usd)).fetchone()
    return _llm_result(answer, {"article_id": ctx.item_key, "image_id": str(image["id"]), "prompt": prompt,
                                "alt": alt, "storage_path": artifact["file_path"], "digest": artifact["digest"]},
                       f"cover image {product['image_size']}", {"bytes": len(png), "image_ms": elapsed_ms})


def publish(ctx: Ctx) -> StepResult:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        article = service.get_article(conn, ctx.item_key)
        site = service.site_client(conn, ctx.tenant_id, ctx.config["site_id"])
        image = conn.execute("SELECT id, storage_path FROM generated_images WHERE article_id = %s "
                             "ORDER BY created_at DESC LIMIT 1", (ctx.item_key,)).fetchone()
    media_id = article["wp_media_id"]
    if image is not None and media_id is None:
        image_output = _read_step(ctx, "generate_image", ctx.item_key)
        media = site.upload_media(f"{service.article_slug(ctx.item_key)}.png", storage.get_bytes(image["storage_path"]),
                                  "image/png", image_output.get("alt", ""))
        media_id = media["id"]
        with db.tenant_transaction(ctx.tenant_id) as conn:  # remembered at once: a retry does not upload twice
            conn.execute("UPDATE articles SET wp_media_id = %s WHERE id = %s", (media_id, ctx.item_key))
            conn.execute("UPDATE generated_images SET image_url = %s WHERE id = %s",
                         (media.get("source_url"), image["id"]))
    wp_status = "publish" if ctx.config.get("publish_mode") == "publish" else "draft"
    row = service.publish_article(ctx.tenant_id, ctx.item_key, wp_status, "pipeline")
    return StepResult(output={"article_id": ctx.item_key, "wp_post_id": row["wp_post_id"],
                              "wp_status": row["wp_status"], "wp_link": row["wp_link"], "wp_media_id": media_id},
                      summary=f"WordPress post {row['wp_post_id']} ({row['wp_status']})",
                      metrics={"wp_post_id": row["wp_post_id"]})


def finalize(ctx: Ctx) -> StepResult:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        counts = conn.execute(
            "SELECT count(*) FILTER (WHERE a.wp_post_id IS NOT NULL) AS published, count(*) AS total "
            "FROM articles a JOIN article_clusters c ON c.id = a.cluster_id WHERE c.run_id = %s",
            (ctx.run_id,)).fetchone()
        conn.execute("UPDATE article_clusters SET status = 'completed' WHERE run_id = %s", (ctx.run_id,))
    return StepResult(output={"published": counts["published"], "articles": counts["total"]},
                      summary=f"{counts['published']} of {counts['total']} articles on WordPress",
                      metrics={"published": counts["published"]})


STEPS: dict[str, Callable[[Ctx], StepResult]] = {
    "analyze_product": analyze_product, "plan_cluster": plan_cluster, "write_article": write_article,
    "generate_image": generate_image, "publish": publish, "finalize": finalize}


def _complete_run(ctx: Ctx, reference: dict) -> None:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        run = runs.get_run(conn, ctx.run_id, for_update=True)
        _record_halt_if_paused(conn, run)  # a resume starts a new execution, which completes the run
        if run["status"] in ("paused", "cancelled"):
            return
        runs.update_run(conn, ctx.run_id, status="completed", current_step="finalize", error_message=None)
        job = (run["config"] or {}).get("schedule_job_id")
        if job:
            conn.execute("UPDATE schedule_jobs SET status = 'completed', completed_at = now(), "
                         "articles_generated = %s WHERE id = %s", (reference["metrics"].get("published", 0), job))


def run_step(event: dict) -> dict:
    step = event["step"]
    if step == "record_failure":
        return record_failure(event)
    if step not in STEPS:
        raise PermanentError(f"unknown pipeline step {step!r}")
    ctx = Ctx(str(event["tenant_id"]), str(event["run_id"]), step, str(event.get("article_id") or ""), {})
    reference = _stored_reference(ctx)
    if reference is None:
        _begin(ctx)
        try:
            reference = _finish(ctx, STEPS[step](ctx))
        except Exception as exc:
            _fail(ctx, exc)
            raise
    if step == "finalize":
        _complete_run(ctx, reference)
    return reference


# ---------------------------------------------------------------- failure
def _short_cause(cause: str | None) -> str:
    try:
        parsed = json.loads(cause or "")
        if isinstance(parsed, dict):
            return str(parsed.get("errorMessage") or parsed.get("Cause") or cause)
    except ValueError:
        pass
    return cause or ""


def record_failure(event: dict) -> dict:
    """The Catch of every state: mark the run failed (unless paused/cancelled) and tell its owner."""
    tenant_id, run_id = str(event["tenant_id"]), str(event["run_id"])
    error = event.get("error") or {}
    error_name = str(error.get("Error") or "Error")
    message = f"{error_name}: {_short_cause(error.get('Cause'))}"[:2000]
    try:
        return _record_failure(tenant_id, run_id, error_name, message)
    except NotFound:  # the tenant or the run was deleted while the execution ran: nothing left to mark
        log.warning("run %s of tenant %s is gone; failure %s not recorded", run_id, tenant_id, message)
        return {"halted": True, "status": "gone"}


def _record_failure(tenant_id: str, run_id: str, error_name: str, message: str) -> dict:
    with db.tenant_transaction(tenant_id) as conn:
        run = runs.get_run(conn, run_id, for_update=True)
        if run["status"] in ("paused", "cancelled") or error_name == "RunHalted":
            return {"halted": True, "status": run["status"]}
        failed_step = conn.execute("SELECT step, item_key FROM steps WHERE run_id = %s AND status = 'failed' "
                                   "ORDER BY started_at DESC LIMIT 1", (run_id,)).fetchone()
        where = failed_step["step"] if failed_step else run["current_step"]
        text = f"step {where} failed: {message}"
        runs.update_run(conn, run_id, status="failed", error_message=text)
        job = (run["config"] or {}).get("schedule_job_id")
        if job:
            conn.execute("UPDATE schedule_jobs SET status = 'failed', completed_at = now(), error_message = %s "
                         "WHERE id = %s", (text, job))
        recipients = [str(run["created_by"])] if run["created_by"] else [
            str(r["id"]) for r in conn.execute("SELECT id FROM users WHERE role IN ('owner', 'admin') "
                                               "AND NOT disabled").fetchall()]
        # In the same transaction: a run is never seen failed without its notification.
        notify_failure(conn, tenant_id, run_id, recipients, text)
    dispatch_pending(tenant_id)  # the e-mail copy could only be queued after the commit
    return {"halted": False, "status": "failed"}


def notify_failure(conn, tenant_id: str, run_id: str, recipients: list[str], text: str) -> None:
    """Tell the run's owner (or the admins) in the app and by e-mail that the run failed and can resume."""
    if recipients:
        notify(tenant_id, recipient_user_ids=recipients, category="content.run_failed",
               title="Article generation failed", body=f"{text}\nResume it with POST /v1/runs/{run_id}/resume.",
               priority="HIGH", channels=("IN_APP", "EMAIL"), related_entity_type="run", related_entity_id=run_id,
               conn=conn)
