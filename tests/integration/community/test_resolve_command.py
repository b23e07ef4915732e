"""`funnel community resolve` on the example cases (tests/fixtures/community/example, a copy of the shared
identity examples) and on the committed
generated set (tests/fixtures/community/cases-small, make_cases.py): the scorer's figures, with margin on the
generated set. The command runs as the scorer runs it (a subprocess printing JSON), on the test runtime's
PostgreSQL (``--database-url``: a scratch database there, not a server of its own)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.identity_score import score

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "community"
FUNNEL = Path(sys.executable).with_name("funnel")


def _resolve(runtime, cases: Path) -> dict:
    done = subprocess.run([str(FUNNEL), "community", "resolve", str(cases / "accounts.jsonl"), "--json",
                           "--database-url", runtime.pg.url()], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def example(runtime):
    return _resolve(runtime, FIXTURES / "example"), json.loads((FIXTURES / "example" / "truth.json").read_text())


@pytest.fixture(scope="module")
def generated(runtime):
    cases = FIXTURES / "cases-small"
    return _resolve(runtime, cases), json.loads((cases / "truth.json").read_text())


def test_the_example_cases_pass_the_scorer(example):
    output, truth = example
    figures = score(output, truth)
    assert figures.passed, figures
    assert figures.certain_recall == 1.0 and figures.probable_found == 1.0


def test_every_key_is_in_exactly_one_developer(generated):
    output, truth = generated
    keys = [k for d in output["developers"] for k in d["accounts"]]
    assert sorted(keys) == sorted(truth["person_of"])


def test_the_generated_cases_pass_with_margin(generated):
    output, truth = generated
    figures = score(output, truth)
    assert not figures.problems and not figures.false_merges, figures.false_merges[:5]
    assert figures.certain_recall == 1.0
    assert figures.probable_found >= 0.95
    assert figures.precision >= 0.95
    assert figures.without_evidence == 0


def test_each_suggestion_says_why(generated):
    output, _ = generated
    assert output["suggestions"]
    for suggestion in output["suggestions"]:
        assert 0 < suggestion["confidence"] < 1
        assert suggestion["evidence"] and all(e["kind"] and e["detail"] and e["weight"] > 0
                                              for e in suggestion["evidence"])


def test_no_developer_holds_two_people_of_a_trap(generated):
    """The negative kinds (colleagues, free mail, one-word names, placeholders, one provider's two ids, role
    addresses, common handles) each end as one developer a person."""
    output, truth = generated
    person_of, kind_of_person = truth["person_of"], truth["kind_of_person"]
    for developer in output["developers"]:
        people = {person_of[k] for k in developer["accounts"]}
        if any(kind_of_person[p] in ("negative", "noise") for p in people):
            assert len(people) == 1, [(k, person_of[k]) for k in developer["accounts"]]
