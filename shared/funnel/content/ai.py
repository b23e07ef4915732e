"""The content pipeline's LLM calls: prompts, JSON answers, the offline writer.

Prompts: the tenant's active version in the ``prompts`` table (platform) wins;
when a tenant has none for a step, the default shipped in
``default_prompts.json`` (same ``{{variable}}`` syntax, declared variables) is
used, so a new tenant works without seeding rows. Copy a default into
``POST /v1/prompts`` to customise it.

Every call goes through :func:`funnel.platform.llm.complete` (model per step
from the registry, no fallback). The offline provider answers through
:func:`offline_answer`: deterministic JSON in the same shape, every text
labelled with ``OFFLINE_LABEL``.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from funnel.db import Connection
from funnel.platform import llm, prompts
from funnel.platform.llm import OFFLINE_LABEL, LlmTransientError


@lru_cache(maxsize=1)
def default_prompts() -> dict:
    return json.loads(resources.files("funnel.content").joinpath("default_prompts.json").read_text("utf-8"))


def prompt_for(conn: Connection, step: str) -> tuple[str, str, str]:
    """(system, template, source) for a step: the tenant's active version, else the shipped default."""
    default = default_prompts()[step]
    row = prompts.active_prompt(conn, step)
    if row is not None:
        return default["system"], row["content"], f"tenant v{row['version']}"
    return default["system"], default["content"], "default"


@dataclass
class JsonAnswer:
    data: dict
    completion: llm.Completion
    prompt_source: str


def _parse_json(text: str) -> dict:
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the answer")
    value = json.loads(text[start:end + 1])
    if not isinstance(value, dict):
        raise ValueError("the answer is not a JSON object")
    return value


def ask_json(step: str, system: str, template: str, values: dict, ai_settings: dict, prompt_source: str,
             offline: dict | None = None) -> JsonAnswer:
    """Render the prompt, call the step's model, parse its JSON answer."""
    user = prompts.render(template, values)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    completion = llm.complete(step, messages, tenant_ai_settings=ai_settings, json_mode=True,
                              offline_responder=lambda _messages: json.dumps(offline or {}, ensure_ascii=False))
    try:
        data = _parse_json(completion.text)
    except ValueError as exc:  # a model may answer well the next time: retried like a 5xx
        raise LlmTransientError(f"{completion.model} did not answer with JSON for {step}: {exc}",
                                model=completion.model) from exc
    return JsonAnswer(data, completion, prompt_source)


# ---------------------------------------------------------------- offline writer
def _seed(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8]


def _words(text: str, limit: int = 6) -> list[str]:
    found = re.findall(r"[A-Za-z][A-Za-z0-9+-]{3,}", text or "")
    seen: list[str] = []
    for word in found:
        if word.lower() not in (w.lower() for w in seen):
            seen.append(word)
        if len(seen) >= limit:
            break
    return seen


def offline_analysis(url: str, page_title: str, page_text: str) -> dict:
    name = (page_title or url).split("|")[0].split(" - ")[0].strip()[:80] or url
    keywords = [w.lower() for w in _words(page_title + " " + page_text, 6)] or ["product"]
    return {"product_name": name,
            "summary": f"{OFFLINE_LABEL} {name}: {page_text[:160].strip()}",
            "persona": f"{OFFLINE_LABEL} teams evaluating {name}",
            "keywords": keywords}


def offline_plan(product_name: str, keywords: list[str], count: int) -> dict:
    pillar = keywords[0] if keywords else product_name
    types = ["article", "faq", "glossary"]
    articles = []
    for index in range(count):
        keyword = keywords[index % len(keywords)] if keywords else pillar
        articles.append({"title": f"[offline] {product_name}: {keyword} guide {index + 1}",
                         "keyword": keyword, "article_type": types[index % 3] if index else "article",
                         "outline": [f"What {keyword} means", f"How {product_name} helps", "Next steps"]})
    return {"pillar_keyword": pillar, "articles": articles}


def offline_article(title: str, keyword: str, outline: list[str], product_name: str, url: str) -> dict:
    sections = "".join(
        f"<h2>{heading}</h2><p>{heading}: notes on {keyword} for readers of {product_name} "
        f"(text {_seed(title, heading)}).</p>" for heading in outline)
    html = (f"<p><em>{OFFLINE_LABEL}</em></p><p>This article about {keyword} was produced by the offline "
            f"provider.</p>{sections}<p><a href=\"{url}\">{product_name}</a></p>")
    return {"title": title, "meta_description": f"[offline] {title}"[:160], "html": html}


def offline_image_prompt(title: str, style: str, theme: str) -> dict:
    return {"prompt": f"{OFFLINE_LABEL} {style} cover, {theme} colours, for: {title}",
            "alt": f"[offline] cover image for {title}"}
