"""Versioned prompts: each save is a new version; one active version per step.

Templates use ``{{variable}}`` placeholders; the declared variables must match
the placeholders exactly, so a typo is an error at save time, not at run time.
"""
from __future__ import annotations

import re

from funnel.db import Connection, Row
from funnel.platform import audit, llm_steps, store_llm
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal

PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(text: str, values: dict[str, object]) -> str:
    missing = placeholders(text) - values.keys()
    if missing:
        raise ValidationFailed(f"missing values for {sorted(missing)}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def create_prompt(conn: Connection, principal: Principal, step: str, content: str, variables: list[str],
                  activate: bool) -> Row:
    """Save ``content`` as the step's next version (active when ``activate``: the others are then not); ``step``
    must be a known step (``llm_steps.check_known_step``)."""
    llm_steps.check_known_step(step, ["body", "step"])
    used = placeholders(content)
    declared = set(variables)
    if used - declared:
        raise ValidationFailed(f"undeclared variables in the prompt: {sorted(used - declared)}")
    if declared - used:
        raise ValidationFailed(f"declared variables not used in the prompt: {sorted(declared - used)}")
    store_llm.lock_prompt_step(conn, step)
    version = store_llm.next_prompt_version(conn, step)
    if activate:
        store_llm.deactivate_prompts(conn, step)
    row = store_llm.insert_prompt(conn, step, version, content, sorted(declared), activate, principal.actor)
    audit.record(conn, principal, "prompt.create", "prompt", row["id"], {"step": step, "version": version})
    return row


def activate_prompt(conn: Connection, principal: Principal, prompt_id: int) -> Row:
    step = store_llm.prompt_step(conn, prompt_id)
    if step is None:
        raise NotFound("prompt not found")
    store_llm.deactivate_prompts(conn, step)
    row = store_llm.activate_prompt(conn, prompt_id)
    audit.record(conn, principal, "prompt.activate", "prompt", prompt_id, {"step": row["step"]})
    return row


def list_prompts(conn: Connection, step: str | None) -> list[Row]:
    return store_llm.list_prompts(conn, step)


def active_prompt(conn: Connection, step: str) -> Row | None:
    return store_llm.active_prompt(conn, step)
