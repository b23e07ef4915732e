"""The project's tests and benchmarks use fixtures inside the repository (tests/fixtures/), never files of
a checkout beside it (../shared): a fresh clone runs them as they are."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|(?:ROOT|REPO)\.parent\b|parents\[\d+\]\.parent|community-examples")


def test_tests_and_benchmarks_reach_nothing_outside_the_repository():
    offenders = []
    for path in sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/*.py"), ROOT / "Makefile"]):
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
