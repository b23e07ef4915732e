"""The steps that call an LLM, as the registry knows them: a module of its own, without the LLM client, so that
whatever checks a step name (prompts, the registry's routes) does not pull in ``funnel.platform.llm`` and its SDK
(e-mail imports ``prompts`` for its placeholders, and its functions ship without the LLM layer)."""
from __future__ import annotations

from funnel import db
from funnel.platform import store_llm
from funnel.platform.errors import ValidationFailed


def check_known_step(step: str, loc: list[str | int]) -> None:
    """A step is known when the registry has a default for it (``step_llm_defaults``: the pipelines' LLM steps,
    and any an operator added with ``funnel llm set-default``); anything else (a typo, a 10 KB name, a NUL) is a
    ValidationFailed naming ``loc``, before anything is read or written under that name."""
    with db.control_transaction() as conn:
        known = sorted(row["step"] for row in store_llm.step_defaults(conn))
    if step not in known:
        message = f"unknown step; known steps: {', '.join(known)}"
        raise ValidationFailed(message, errors=[{"loc": loc, "msg": message, "type": "unknown_step"}])
