"""The figures of the shared identity examples' score.py (tests/fixtures/community/example holds a copy of the
examples), computed from a resolve output and a truth file (the same
rules, as a function, so a test asserts on them without running score.py's subprocess and printing).

``score(output, truth)`` -> ``Figures`` (false merges, certain recall, probable found, precision of suggestions
at confidence >= 0.7 and how many there were, suggestions without evidence, keys in no or two developers).
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figures:
    false_merges: list[tuple[str, str]] = field(default_factory=list)
    certain_recall: float = 1.0
    probable_found: float = 1.0
    precision: float = 1.0
    high_suggestions: int = 0
    without_evidence: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (not self.false_merges and not self.problems and self.certain_recall >= 0.98
                and self.probable_found >= 0.8 and self.precision >= 0.9 and self.without_evidence == 0)


def score(output: dict[str, Any], truth: dict[str, Any]) -> Figures:
    person_of: dict[str, str] = truth["person_of"]
    kind_of_key = {k: truth["kind_of_person"][p] for k, p in person_of.items()}
    figures = Figures()
    dev_of: dict[str, str] = {}
    for developer in output.get("developers", []):
        for key in developer.get("accounts", []):
            if key in dev_of:
                figures.problems.append(f"key {key} in two developers")
            dev_of[key] = developer["developer_id"]
    missing = [k for k in person_of if k not in dev_of]
    if missing:
        figures.problems.append(f"{len(missing)} keys in no developer, e.g. {missing[:3]}")
    members: dict[str, list[str]] = defaultdict(list)
    for key, developer_id in dev_of.items():
        members[developer_id].append(key)
    merged_true: set[tuple[str, str]] = set()
    for keys in members.values():
        for x, y in itertools.combinations(sorted(keys), 2):
            if x in person_of and y in person_of:
                if person_of[x] == person_of[y]:
                    merged_true.add((x, y))
                else:
                    figures.false_merges.append((x, y))
    by_person: dict[str, list[str]] = defaultdict(list)
    for key, person in person_of.items():
        by_person[person].append(key)
    pairs: dict[str, set[tuple[str, str]]] = {"certain": set(), "probable": set()}
    for keys in by_person.values():
        for x, y in itertools.combinations(sorted(keys), 2):
            if kind_of_key[x] in pairs:
                pairs[kind_of_key[x]].add((x, y))
    suggested: dict[tuple[str, str], float] = {}
    right = 0
    for s in output.get("suggestions", []):
        developers = s.get("developers", [])
        if len(developers) != 2:
            continue
        confidence = float(s.get("confidence", 0))
        if not s.get("evidence"):
            figures.without_evidence += 1
        ka, kb = members.get(developers[0], []), members.get(developers[1], [])
        if confidence >= 0.7:
            figures.high_suggestions += 1
            right += any(person_of.get(x) == person_of.get(y) for x in ka for y in kb)
        for x in ka:
            for y in kb:
                pair = (min(x, y), max(x, y))
                suggested[pair] = max(suggested.get(pair, 0.0), confidence)
    if pairs["certain"]:
        figures.certain_recall = len(pairs["certain"] & merged_true) / len(pairs["certain"])
    if pairs["probable"]:
        figures.probable_found = sum(1 for p in pairs["probable"] if p in merged_true or suggested.get(p, 0) >= 0.5
                                     ) / len(pairs["probable"])
    if figures.high_suggestions:
        figures.precision = right / figures.high_suggestions
    return figures
