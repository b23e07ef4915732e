"""SQL lives in each area's data-access modules (the Structure issue): a ``.execute(`` call in shared/funnel
belongs in a ``store.py`` / ``store_*.py`` module, in ``funnel/db.py`` or in the migrations' machinery.
The modules that still run SQL themselves are listed in NOT_YET_MOVED, and that list only shrinks: a new
module with SQL fails, and so does a listed module whose SQL has moved out (take it off the list).
Static (AST) check.
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
# Modules that still run SQL themselves. The Structure issue empties this set area by area (each area's SQL
# moves into its store.py); never add to it. notifications is done (funnel/notifications/store.py).
NOT_YET_MOVED = {
}


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
    outside = {module: lines for module, lines in _modules_with_sql().items() if module not in NOT_YET_MOVED}
    assert not outside, "SQL outside a store module (move it into the area's store.py and call that):\n" + "\n".join(
        f"shared/funnel/{module}: line(s) {', '.join(map(str, lines))}" for module, lines in sorted(outside.items()))


def test_not_yet_moved_only_shrinks():
    with_sql = _modules_with_sql()
    emptied = sorted(module for module in NOT_YET_MOVED if module not in with_sql)
    assert not emptied, f"no SQL left in {emptied}: take them off NOT_YET_MOVED"


def test_notifications_is_done():
    assert not {module for module in NOT_YET_MOVED if module.startswith("notifications/")}
    assert (PRODUCT / "notifications" / "store.py").is_file()


def test_the_check_sees_sql():
    """The walk itself works: the store modules it skips do run SQL."""
    store = PRODUCT / "notifications" / "store.py"
    assert _sql_calls(store, "notifications/store.py")
