"""SQL lives in each area's data-access modules (the Structure issue): a ``.execute(`` call in shared/funnel
belongs in a ``store.py`` / ``store_*.py`` module, in ``funnel/db.py``, the generic page query or the
migrations' machinery; services hold the rules and call the store, so a rule is testable over an in-memory fake
of it (tests/unit/<area>/). Static (AST) check.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "shared" / "funnel"
# Allowed to execute SQL for good: the connection layer, what runs the migrations, and the generic keyset-page
# query (platform/pagination.py: every store's list calls it with its own table, columns and filters).
EXEMPT = {"db.py", "platform/migrations.py", "platform/migration_helpers.py", "platform/pagination.py"}
# `.execute(` calls that are not SQL: module -> the receivers (source text) allowed there.
NOT_SQL = {"outreach/forms/engine.py": {"run"}}  # a form-filling run's execute(url)


def _is_store(module: str) -> bool:
    name = module.rsplit("/", 1)[-1]
    return name == "store.py" or (name.startswith("store_") and name.endswith(".py"))


def _sql_calls(path: Path, module: str) -> list[int]:
    """Lines of the ``<something>.execute(...)`` calls of ``path`` (the allowed non-SQL ones left out)."""
    allowed = NOT_SQL.get(module, set())
    return sorted(node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "execute"
            and ast.unparse(node.func.value) not in allowed)


def _modules_with_sql() -> dict[str, list[int]]:
    found = {}
    for path in sorted(PRODUCT.rglob("*.py")):
        module = path.relative_to(PRODUCT).as_posix()
        if module in EXEMPT or _is_store(module) or "migrations" in path.relative_to(PRODUCT).parts[:-1]:
            continue
        lines = _sql_calls(path, module)
        if lines:
            found[module] = lines
    return found


def test_sql_runs_only_in_store_modules():
    outside = _modules_with_sql()
    assert not outside, "SQL outside a store module (move it into the area's store.py and call that):\n" + "\n".join(
        f"shared/funnel/{module}: line(s) {', '.join(map(str, lines))}" for module, lines in sorted(outside.items()))


def test_every_area_has_its_store():
    areas = [path.parent.name for path in PRODUCT.glob("*/routes.py")]
    assert areas, "no area found: the check looks in the wrong folder"
    without = [area for area in areas if not any((PRODUCT / area).glob("store*.py"))]
    assert not without, f"areas with routes but no store module: {without}"


def test_the_check_sees_sql():
    """The walk itself works: the store modules it skips do run SQL."""
    store = PRODUCT / "notifications" / "store.py"
    assert _sql_calls(store, "notifications/store.py")
