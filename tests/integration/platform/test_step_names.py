"""Where the API takes a step name (a workspace's model for a step, a prompt's step), only a known step is
accepted: the registry's steps (`step_llm_defaults`). Any other name, of any length or content, is a 422 naming
the field, and nothing is written."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from funnel import db
from tests.support.tenants import new_tenant

UNKNOWN = ["no_such_step", "x" * 2_000, "write_article\n", "\x00", "..%2Fwrite_article"]  # sent percent-encoded


@pytest.fixture(scope="module")
def tenant(runtime):
    return new_tenant()


def _saved(tenant) -> tuple[object, int]:
    with db.tenant_transaction(tenant.tenant_id) as conn:
        settings = conn.execute("SELECT ai_settings FROM system_settings").fetchone()
        prompts = conn.execute("SELECT count(*) AS n FROM prompts").fetchone()["n"]
    return (settings["ai_settings"] if settings else None), prompts


@pytest.mark.parametrize("step", UNKNOWN)
def test_a_model_for_an_unknown_step_is_a_422_naming_the_path_and_saves_nothing(api, tenant, step):
    before = _saved(tenant)
    answer = api.put(f"/v1/llm/step-defaults/{quote(step, safe='')}", headers=tenant.headers,
                     json={"provider_id": "offline", "model_class": "standard"})
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [["path", "step"]]
    if "\x00" not in step:  # a NUL is refused at the edge, before any route, with its own message
        assert "known steps: " in answer.json()["detail"] and "write_article" in answer.json()["detail"]
    assert _saved(tenant) == before


@pytest.mark.parametrize("step", ["no_such_step", "a" * 100])
def test_a_prompt_for_an_unknown_step_is_a_422_naming_the_field_and_saves_nothing(api, tenant, step):
    before = _saved(tenant)
    answer = api.post("/v1/prompts", headers=tenant.headers, json={"step": step, "content": "Hello {{name}}",
                                                                  "variables": ["name"]})
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [["body", "step"]]
    assert _saved(tenant) == before


def test_a_known_step_is_accepted_for_both(api, tenant):
    chosen = api.put("/v1/llm/step-defaults/write_article", headers=tenant.headers,
                     json={"provider_id": "offline", "model_class": "standard"})
    assert chosen.status_code == 200, chosen.text
    prompt = api.post("/v1/prompts", headers=tenant.headers, json={"step": "write_article", "content": "Hi {{name}}",
                                                                   "variables": ["name"]})
    assert prompt.status_code == 201, prompt.text
