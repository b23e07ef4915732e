"""Style, types and layering, checked in `make test`: ruff (the rules in pyproject.toml's [tool.ruff]) over the
whole checkout, mypy over the product package ([tool.mypy]), import-linter's contracts ([tool.importlinter])
over the packages funnel and funnel_dev, and, since functions/ is no package import-linter could read, an AST
check that the Lambda handlers import only the product's public modules.
"""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"


def _run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    tool = Path(sys.executable).with_name(name)
    if not tool.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: run `make install`")
    return subprocess.run([str(tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing():
    result = _run_tool("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff check found problems (fix them, `ruff check --fix` for the safe ones):\n" \
                                   f"{result.stdout}{result.stderr}"


def test_mypy_finds_nothing():
    """The product package type-checks ([tool.mypy]: funnel, with pydantic's plugin)."""
    result = _run_tool("mypy", "--no-incremental")
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}{result.stderr}"


def test_import_contracts_are_kept():
    result = _run_tool("lint-imports", "--no-cache")
    assert result.returncode == 0, f"import-linter contracts broken:\n{result.stdout}{result.stderr}"


def _funnel_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, imported name or None) for every import of funnel or funnel_dev, lazy ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return [(line, module, name) for line, module, name in found if module.split(".")[0] in ("funnel", "funnel_dev")]


@pytest.mark.parametrize("handler", sorted(FUNCTIONS.glob("*/app.py")), ids=lambda p: p.parent.name)
def test_functions_import_only_public_product_modules(handler: Path):
    """A handler is the top of the layers: it may use any area, but only through existing, public modules
    of the product (never funnel_dev, never a private ``_module`` or ``_name``)."""
    problems = []
    for line, module, name in _funnel_imports(handler):
        where = f"{handler.relative_to(ROOT)}:{line}: {module}" + (f".{name}" if name else "")
        if module.split(".")[0] != "funnel":
            problems.append(f"{where}: the product's handlers never import the dev tools")
        elif any(part.startswith("_") for part in module.split(".")) or (name or "").startswith("_"):
            problems.append(f"{where}: private to its module")
        elif importlib.util.find_spec(module) is None:
            problems.append(f"{where}: no such module")
    assert not problems, "\n".join(problems)
