"""The LLM registry as the API shows it and as a workspace or an operator changes it.

``funnel.platform.llm`` resolves a step's model and calls it; this module lists the registry (providers,
models, the step defaults with the workspace's own choice), sets a workspace's model for a step (checked by
resolving it, audited) and the platform's default for a step (``funnel llm set-default``). The SQL is in
``store_llm`` (control DB) and ``store_settings`` (the tenant's ``ai_settings``).
"""
from __future__ import annotations

from typing import Any

from funnel import db
from funnel.db import Row
from funnel.platform import audit, llm, llm_steps, store_llm, store_settings
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal


def list_providers() -> list[Row]:
    with db.control_transaction() as conn:
        return store_llm.providers(conn)


def list_models() -> list[Row]:
    with db.control_transaction() as conn:
        return store_llm.models(conn)


def step_defaults(principal: Principal) -> list[dict[str, Any]]:
    """Each step's platform default, with the workspace's own choice for it (``tenant_override``, or None)."""
    with db.control_transaction() as conn:
        defaults = store_llm.step_defaults(conn)
    with db.tenant_transaction(principal.tenant_id) as conn:
        tenant_choices = store_settings.ai_settings(conn).get("step_models", {})
    return [{**default, "tenant_override": tenant_choices.get(default["step"])} for default in defaults]


def set_tenant_step_model(principal: Principal, step: str, choice: dict[str, Any]) -> dict[str, Any]:
    """The workspace's own model for ``step`` (a known step, else ValidationFailed; ``provider_id``,
    ``model_class``, optional ``model_name``); a choice no active model answers is a NotFound, and nothing is
    written."""
    llm_steps.check_known_step(step, ["path", "step"])
    with db.tenant_transaction(principal.tenant_id) as conn:
        ai_settings = store_settings.ai_settings(conn)
        try:
            ai_settings = with_step_model(ai_settings, step, choice)
        except ValidationFailed as exc:
            raise NotFound(f"no such model: {exc.detail}") from exc
        store_settings.save_ai_settings(conn, ai_settings)
        audit.record(conn, principal, "llm.step_model.set", "step_llm_default", step, choice)
    return {"step": step, **choice}


def with_step_model(ai_settings: dict[str, Any], step: str, choice: dict[str, Any]) -> dict[str, Any]:
    """``ai_settings`` with the workspace's ``choice`` for ``step`` (a known step), checked by resolving it the way
    the step will: ValidationFailed (naming no field) when no active model answers it."""
    changed = {**ai_settings, "step_models": {**ai_settings.get("step_models", {}), step: choice}}
    llm.resolve_model(step, changed)
    return changed


# The operator's side (``funnel llm``) runs as the owner role, like the other operator commands.

def set_step_default(step: str, provider_id: str, model_class: str) -> None:
    """The platform's default for ``step`` (``funnel llm set-default``)."""
    with db.control_admin_connect() as conn:
        store_llm.set_step_default(conn, step, provider_id, model_class)


def step_defaults_with_models() -> list[Row]:
    """What ``funnel llm list`` prints: each step's default and the active model it resolves to."""
    with db.control_admin_connect() as conn:
        return store_llm.step_defaults_with_models(conn)
