"""The offline LLM provider resolves only where settings allow it."""
from __future__ import annotations

import pytest

from funnel.platform import llm
from funnel.settings import reset_settings

REGISTRY = {
    "models": [
        {"provider_id": "offline", "model_name": "offline-standard", "model_class": "standard", "api_base_url": None,
         "api_key_name": None, "is_offline": True, "input_cost_per_mtok": 0, "output_cost_per_mtok": 0},
        {"provider_id": "openai", "model_name": "gpt-x", "model_class": "standard", "api_base_url": "https://x",
         "api_key_name": "openai", "is_offline": False, "input_cost_per_mtok": 1, "output_cost_per_mtok": 2},
    ],
    "defaults": {"write_article": ("offline", "standard"), "plan_articles": ("openai", "standard")},
}


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(llm, "_registry", lambda: REGISTRY)
    monkeypatch.delenv("FUNNEL_LLM_STEP_OVERRIDES", raising=False)
    yield
    monkeypatch.undo()
    reset_settings()


def allow(monkeypatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("FUNNEL_ALLOW_OFFLINE_LLM", raising=False)
    else:
        monkeypatch.setenv("FUNNEL_ALLOW_OFFLINE_LLM", value)
    reset_settings()


@pytest.mark.parametrize("value", [None, "false"])
def test_offline_is_refused_unless_allowed(registry, monkeypatch, value):
    allow(monkeypatch, value)  # unset is the default of every deployed stage
    tenant_choice = {"step_models": {"plan_articles": {"provider_id": "offline"}}}
    for step, settings in (("write_article", None), ("plan_articles", tenant_choice)):
        with pytest.raises(llm.OfflineLlmNotAllowed) as refused:
            llm.resolve_model(step, settings)
        assert refused.value.status == 422 and not refused.value.retryable
    with pytest.raises(llm.OfflineLlmNotAllowed):  # what a pipeline step calls: no placeholder text comes back
        llm.complete("write_article", [{"role": "user", "content": "hello"}])
    assert llm.resolve_model("plan_articles").provider_id == "openai"


def test_offline_resolves_where_allowed(registry, monkeypatch):
    allow(monkeypatch, "true")
    completion = llm.complete("write_article", [{"role": "user", "content": "hello"}])
    assert completion.offline and completion.text.startswith(llm.OFFLINE_LABEL)
