"""Notification templates: ``{{variable}}`` placeholders, rendered safely.

Rendering is plain substitution (no expressions, no attribute access), a
missing variable is an error, and for HTML messages every value is escaped.
The recipient's language (personalisation data) picks the text; English is
the fallback.
"""
from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path

from funnel.platform.errors import ValidationFailed
from funnel.platform.prompts import PLACEHOLDER, placeholders

DEFAULT_LANGUAGE = "en"


@lru_cache(maxsize=1)
def _templates() -> dict:
    return json.loads((Path(__file__).with_name("templates.json")).read_text(encoding="utf-8"))


def render(template_id: str, variables: dict, language: str | None, message_format: str = "PLAIN") -> tuple[str, str]:
    """(title, message) of ``template_id`` in ``language``."""
    template = _templates().get(template_id)
    if template is None:
        raise ValidationFailed(f"unknown notification template {template_id!r}")
    text = template.get((language or DEFAULT_LANGUAGE).split("-")[0]) or template[DEFAULT_LANGUAGE]
    needed = placeholders(text["title"]) | placeholders(text["message"])
    missing = needed - variables.keys()
    if missing:
        raise ValidationFailed(f"template {template_id!r} needs {sorted(missing)}")

    def value(name: str, escape: bool) -> str:
        raw = str(variables[name])
        return html.escape(raw) if escape else raw

    title = PLACEHOLDER.sub(lambda m: value(m.group(1), False), text["title"])
    message = PLACEHOLDER.sub(lambda m: value(m.group(1), message_format == "HTML"), text["message"])
    return title[:200], message
