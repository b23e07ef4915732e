"""The LLM layer: one code path (the ``openai`` SDK) against each provider's
OpenAI-compatible endpoint from the control DB registry.

Model choice per step, first match wins:
1. settings ``llm_step_overrides`` ("step=provider:class,*=provider:class"),
2. the tenant's own choice (``system_settings.ai_settings["step_models"][step]``),
3. the control DB's ``step_llm_defaults``.
No model name lives in Python, and there is no silent fallback: a provider
error fails the call with a message naming the model, so the user can re-run
with another one. The ``offline`` provider is deterministic and labels every
output it produces, so the product runs end to end with no API key; it resolves
only where settings ``allow_offline_llm`` (the local runtime, tests), never in a
deployed stage: there choosing it is a 422 and a step resolving to it fails.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from funnel import db
from funnel.billing import limits
from funnel.db import Connection
from funnel.observability import bound_tenant, llm_usage, tracer
from funnel.platform import store_llm, store_settings
from funnel.platform.errors import FunnelError, ValidationFailed
from funnel.platform.secrets import get_secret
from funnel.settings import get_settings

OFFLINE_LABEL = "[offline model: deterministic text, no LLM was called]"
REGISTRY_TTL_SECONDS = 60.0


class LlmError(FunnelError):
    """A provider failed in a way a retry will not heal (bad key, unknown model, 4xx)."""

    status, title, type_suffix = 502, "LLM provider error", "llm-provider"
    retryable = False


class LlmTransientError(LlmError):
    """Timeouts, 429 and 5xx: Step Functions retries these with backoff."""

    retryable = True


class OfflineLlmNotAllowed(LlmError):
    """The offline provider was chosen where settings do not allow it (every deployed stage): its
    placeholder text must never be published. Not retried; the API answers 422."""

    status, title, type_suffix = 422, "Offline model not allowed", "offline-llm-not-allowed"


@dataclass(frozen=True)
class ModelChoice:
    provider_id: str
    model_name: str
    model_class: str
    api_base_url: str | None
    api_key_name: str | None
    is_offline: bool
    input_cost_per_mtok: float
    output_cost_per_mtok: float

    @property
    def label(self) -> str:
        return f"{self.provider_id}/{self.model_name}"


@dataclass
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    offline: bool
    latency_ms: float = 0.0
    raw: dict = field(default_factory=dict)

    @property
    def token_usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


_registry_cache: tuple[float, dict] | None = None


def _registry() -> dict:
    global _registry_cache
    now = time.monotonic()
    if _registry_cache and _registry_cache[0] > now:
        return _registry_cache[1]
    with db.control_transaction() as conn:
        models = store_llm.active_models(conn)
        defaults = store_llm.step_defaults(conn)
    registry = {"models": models, "defaults": {d["step"]: (d["provider_id"], d["model_class"]) for d in defaults}}
    _registry_cache = (now + REGISTRY_TTL_SECONDS, registry)
    return registry


def forget_registry() -> None:
    global _registry_cache
    _registry_cache = None


def _parse_overrides(text: str) -> dict[str, tuple[str, str]]:
    overrides = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        step, _, target = part.partition("=")
        provider, _, model_class = target.partition(":")
        overrides[step.strip()] = (provider.strip(), model_class.strip() or "standard")
    return overrides


def tenant_ai_settings(conn: Connection) -> dict:
    """The tenant's own model choices (``system_settings.ai_settings``), for ``complete(..., tenant_ai_settings=)``:
    read once per pipeline step by the areas that call the LLM."""
    return store_settings.ai_settings(conn)


def resolve_model(step: str, tenant_ai_settings: dict | None = None) -> ModelChoice:
    registry = _registry()
    overrides = _parse_overrides(get_settings().llm_step_overrides)
    tenant_choice = ((tenant_ai_settings or {}).get("step_models") or {}).get(step)
    if step in overrides or "*" in overrides:
        provider_id, model_class = overrides.get(step) or overrides["*"]
        model_name = None
    elif tenant_choice:
        provider_id, model_class = tenant_choice["provider_id"], tenant_choice.get("model_class", "standard")
        model_name = tenant_choice.get("model_name")
    elif step in registry["defaults"]:
        provider_id, model_class = registry["defaults"][step]
        model_name = None
    else:
        raise ValidationFailed(f"no LLM is configured for step {step!r}")
    for model in registry["models"]:
        if model["provider_id"] == provider_id and (
                model["model_name"] == model_name if model_name else model["model_class"] == model_class):
            choice = ModelChoice(model["provider_id"], model["model_name"], model["model_class"],
                                 model["api_base_url"], model["api_key_name"], model["is_offline"],
                                 float(model["input_cost_per_mtok"]), float(model["output_cost_per_mtok"]))
            if choice.is_offline and not get_settings().allow_offline_llm:
                raise OfflineLlmNotAllowed(
                    f"step {step!r} resolves to the offline model {choice.label}, which only writes placeholder "
                    f"text and is not allowed here; choose a real model", model=choice.label)
            return choice
    raise ValidationFailed(f"no active {model_name or model_class} model of provider {provider_id!r} "
                           f"for step {step!r}")


def _offline_completion(choice: ModelChoice, messages: list[dict],
                        offline_responder: Callable[[list[dict]], str] | None) -> Completion:
    prompt = "\n".join(str(m.get("content", "")) for m in messages)
    if offline_responder is not None:
        text = offline_responder(messages)
    else:
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:12]
        text = f"{OFFLINE_LABEL} reply {digest} to: {prompt[:200]}"
    prompt_tokens, completion_tokens = max(1, len(prompt) // 4), max(1, len(text) // 4)
    return Completion(text=text, model=choice.label, prompt_tokens=prompt_tokens,
                      completion_tokens=completion_tokens, cost_usd=0.0, offline=True)


def _api_key(choice: ModelChoice) -> str:
    keys = get_secret(get_settings().llm_api_keys_secret_id)
    key = keys.get(choice.api_key_name or choice.provider_id) if isinstance(keys, dict) else None
    if not key:
        raise LlmError(f"no API key is configured for provider {choice.provider_id!r} (model {choice.label}); "
                       f"add it to the LLM keys secret or choose another model", model=choice.label)
    return key


def complete(step: str, messages: list[dict], *, tenant_ai_settings: dict | None = None,
             temperature: float | None = None, max_tokens: int | None = None, json_mode: bool = False,
             offline_responder: Callable[[list[dict]], str] | None = None,
             timeout_seconds: float = 120.0) -> Completion:
    """Run one chat completion for ``step`` with the model the registry chooses."""
    choice = resolve_model(step, tenant_ai_settings)
    if choice.is_offline:
        return _counted(step, _offline_completion(choice, messages, offline_responder))
    tenant_id = bound_tenant()  # the handler's tenant (api context, step and worker handlers bind it)
    if tenant_id is not None:
        limits.check_llm_spend(tenant_id)  # the plan's monthly cap (402); the cost is added once answered
    import openai  # heavy import: only paid by code paths that really call a model

    client = openai.OpenAI(base_url=choice.api_base_url, api_key=_api_key(choice), max_retries=0,
                           timeout=timeout_seconds)
    kwargs: dict = {"model": choice.model_name, "messages": messages}
    if temperature is not None:
        kwargs["temperature"] = temperature
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if json_mode:
        kwargs["response_format"] = {"type": "json_object"}
    started = time.perf_counter()
    try:
        with tracer.subsegment("llm"):
            response = client.chat.completions.create(**kwargs)
    except (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError) as exc:
        raise LlmTransientError(f"{choice.label}: {type(exc).__name__}: {exc}", model=choice.label) from exc
    except openai.APIStatusError as exc:
        error_class = LlmTransientError if exc.status_code >= 500 else LlmError
        raise error_class(f"{choice.label} answered {exc.status_code}: {exc.message}", model=choice.label) from exc
    usage = response.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    completion_tokens = usage.completion_tokens if usage else 0
    cost = (prompt_tokens * choice.input_cost_per_mtok + completion_tokens * choice.output_cost_per_mtok) / 1e6
    text = response.choices[0].message.content or "" if response.choices else ""
    if tenant_id is not None:
        limits.record_llm_spend(tenant_id, round(cost, 6))
    return _counted(step, Completion(text=text, model=choice.label, prompt_tokens=prompt_tokens,
                                     completion_tokens=completion_tokens, cost_usd=round(cost, 6), offline=False,
                                     latency_ms=(time.perf_counter() - started) * 1000))


def _counted(step: str, completion: Completion) -> Completion:
    llm_usage(step, completion.model, input_tokens=completion.prompt_tokens,
              output_tokens=completion.completion_tokens, cost_usd=completion.cost_usd)
    return completion
