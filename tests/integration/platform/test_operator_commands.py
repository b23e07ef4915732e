"""The operator commands of the artifact (``funnel tenants list``, ``funnel llm list / set-default``) against a
real PostgreSQL: they read and write the control DB through the platform's services."""
from __future__ import annotations

import pytest

from funnel import cli
from funnel.platform import llm
from tests.support.cli import printed_lines
from tests.support.tenants import new_tenant

pytestmark = pytest.mark.usefixtures("runtime")


def _lines(capsys) -> dict[str, list[str]]:
    """The command's output by its first column."""
    return {line.split()[0]: line.split() for line in printed_lines(capsys.readouterr().out)}


def test_tenants_list_shows_a_provisioned_tenant(capsys):
    handle = new_tenant()
    assert cli.main(["tenants", "list"]) == 0
    assert _lines(capsys)[handle.slug][1:4] == ["silo", "active", "free"]


def test_llm_set_default_changes_a_steps_model_and_list_shows_what_it_resolves_to(capsys):
    assert cli.main(["llm", "list"]) == 0
    before = _lines(capsys)["classify_form_field"]
    try:
        assert cli.main(["llm", "set-default", "classify_form_field", "claude", "standard"]) == 0
        assert _lines(capsys)["classify_form_field"][1:] == ["claude", "standard", "claude-haiku-4-5"]
    finally:
        cli.main(["llm", "set-default", "classify_form_field", before[1], before[2]])
        llm.forget_registry()
    assert _lines(capsys)["classify_form_field"] == before
