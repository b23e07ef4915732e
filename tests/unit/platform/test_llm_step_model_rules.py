"""A workspace's own model for a step (``llm_registry``) over in-memory fakes of ``store_settings``,
``store_llm`` and the model resolution: a choice no active model answers is a 404 and writes nothing, a valid
one is saved next to the other steps' choices and audited, and the step defaults show it as the override."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from funnel import db
from funnel.platform import llm_registry
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal

ADMIN = Principal("tenant-a", "user-1", "admin")


class FakeSettings:
    def __init__(self) -> None:
        self.saved: dict = {"step_models": {"plan_cluster": {"provider_id": "gemini", "model_class": "pro"}}}
        self.writes = 0

    def ai_settings(self, conn):
        return {key: dict(value) for key, value in self.saved.items()}

    def save_ai_settings(self, conn, ai_settings):
        self.saved, self.writes = ai_settings, self.writes + 1


class FakeRegistry:
    def step_defaults(self, conn):
        return [{"step": "plan_cluster", "provider_id": "openai", "model_class": "pro"},
                {"step": "write_article", "provider_id": "claude", "model_class": "pro"}]


@pytest.fixture
def settings(monkeypatch):
    fake, audited = FakeSettings(), []

    @contextmanager
    def transaction(*args):
        yield object()

    def resolve_model(step, ai_settings):
        if ai_settings["step_models"][step]["provider_id"] != "claude":
            raise ValidationFailed(f"no active model of provider for step {step!r}")

    monkeypatch.setattr(db, "tenant_transaction", transaction)
    monkeypatch.setattr(db, "control_transaction", transaction)
    monkeypatch.setattr(llm_registry, "store_settings", fake)
    monkeypatch.setattr(llm_registry, "store_llm", FakeRegistry())
    monkeypatch.setattr(llm_registry.llm_steps, "store_llm", FakeRegistry())
    monkeypatch.setattr(llm_registry.llm, "resolve_model", resolve_model)
    monkeypatch.setattr(llm_registry.audit, "record", lambda conn, actor, action, *rest: audited.append(action))
    fake.audited = audited
    return fake


def test_a_choice_no_model_answers_is_not_found_and_writes_nothing(settings):
    with pytest.raises(NotFound, match="no such model"):
        llm_registry.set_tenant_step_model(ADMIN, "write_article", {"provider_id": "nobody", "model_class": "pro"})
    assert settings.writes == 0 and settings.audited == []


def test_a_valid_choice_is_saved_beside_the_other_steps_and_audited(settings):
    choice = {"provider_id": "claude", "model_class": "standard"}
    assert llm_registry.set_tenant_step_model(ADMIN, "write_article", choice) == {"step": "write_article", **choice}
    assert settings.saved["step_models"] == {"plan_cluster": {"provider_id": "gemini", "model_class": "pro"},
                                             "write_article": choice}
    assert settings.audited == ["llm.step_model.set"]
    overrides = {d["step"]: d["tenant_override"] for d in llm_registry.step_defaults(ADMIN)}
    assert overrides == {"plan_cluster": {"provider_id": "gemini", "model_class": "pro"}, "write_article": choice}
