"""What ships: the product package `funnel` never imports the dev tools (funnel-dev, moto, ...), every
function's layers provide the third-party modules its code can reach, and the package carries its
alembic migrations (``funnel.migrations``). Static (AST) checks; tests/infrastructure/test_artifacts.py
builds and imports the real artifacts.
"""
from __future__ import annotations

import ast
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from funnel_dev.template import FUNCTION, load_yaml

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "shared" / "funnel"
# Only development needs these; the product (shared/funnel, migrations/, functions/) must not import them.
DEV_ONLY = {"funnel_dev", "moto", "uvicorn", "cfn_lint", "yaml", "werkzeug", "flask", "requests", "responses",
            "pytest", "samtranslator", "statelint", "aiosmtpd", "docker"}
# Modules the Lambda python3.12 runtime itself provides (imported under a try/except ImportError).
RUNTIME_PROVIDED = {"snapshot_restore_py"}


def module_imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` may import (lazy ones too), plus string constants naming a funnel module
    (``importlib.import_module`` targets such as funnel.api.app.AREA_ROUTERS)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("funnel.")
              and node.value.replace(".", "").replace("_", "").isalnum()):
            found.add(node.value)
    return found


def _product_file(name: str) -> Path | None:
    base = PRODUCT.parent.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def reachable_third_party(entry: Path) -> set[str]:
    """Top-level third-party modules reachable from ``entry`` through the funnel modules it imports."""
    seen: set[str] = set()
    todo = [("__entry__", entry)]
    third: set[str] = set()
    while todo:
        module, path = todo.pop()
        for name in module_imports(path, module):
            top = name.split(".")[0]
            if top != "funnel":
                if top and top not in sys.stdlib_module_names and top != "__future__":
                    third.add(top)
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                file = _product_file(sub)
                if file and sub not in seen:
                    seen.add(sub)
                    todo.append((sub, file))
    return third


def requirement_lines(path: Path) -> list[str]:
    """Requirement lines of a requirements file, following ``-r other.txt`` includes."""
    lines: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            lines += requirement_lines((path.parent / line[3:].strip()).resolve())
        else:
            lines.append(line)
    return lines


@cache
def _top_level_by_distribution() -> dict[str, set[str]]:
    by_dist: dict[str, set[str]] = {}
    for top, dists in metadata.packages_distributions().items():
        for dist in dists:
            by_dist.setdefault(_normal(dist), set()).add(top)
    return by_dist


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def provided_modules(lines: list[str]) -> set[str]:
    """Top-level modules a pip install of ``lines`` provides (dependencies as installed in this venv)."""
    modules: set[str] = set()
    todo = [Requirement(line) for line in lines]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        key = (_normal(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        modules |= _top_level_by_distribution().get(key[0], set())
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in (req.extras or {""})):
                todo.append(sub)
    return modules


def zip_functions() -> list:
    resources = load_yaml(ROOT / "template.yaml")["Resources"]
    return [pytest.param(lid, resource, id=lid) for lid, resource in resources.items()
            if resource["Type"] == FUNCTION and resource["Properties"].get("PackageType") != "Image"]


def test_product_imports_no_dev_tool():
    offenders = []
    for base in (PRODUCT, ROOT / "migrations", ROOT / "functions"):
        for path in sorted(base.rglob("*.py")):
            module = ".".join(path.relative_to(PRODUCT.parent).with_suffix("").parts) if base == PRODUCT else path.stem
            for name in module_imports(path, module):
                if name.split(".")[0] in DEV_ONLY:
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
            if "funnel_dev" in path.read_text(encoding="utf-8"):
                offenders.append(f"{path.relative_to(ROOT)}: names funnel_dev")
    assert not offenders, offenders


def test_product_package_holds_no_local_runtime():
    assert not (PRODUCT / "local").exists()
    assert not list(PRODUCT.rglob("moto*.py"))


def test_migrations_come_from_the_package():
    import funnel.migrations
    from funnel.platform.migrations import MIGRATIONS_DIR

    assert MIGRATIONS_DIR == Path(funnel.migrations.__file__).parent
    assert (MIGRATIONS_DIR / "tenant" / "env.py").is_file() and (MIGRATIONS_DIR / "control" / "env.py").is_file()


@pytest.mark.parametrize(("logical_id", "resource"), zip_functions())
def test_function_layers_provide_what_its_code_imports(logical_id, resource):
    resources = load_yaml(ROOT / "template.yaml")["Resources"]
    lines: list[str] = []
    for ref in resource["Properties"].get("Layers", []):
        layer = resources[ref["Ref"]]
        requirements = ROOT / layer["Properties"]["ContentUri"] / "requirements.txt"
        if layer.get("Metadata", {}).get("BuildMethod", "").startswith("python"):
            lines += requirement_lines(requirements)
    app = ROOT / resource["Properties"]["CodeUri"] / "app.py"
    missing = reachable_third_party(app) - provided_modules(lines) - RUNTIME_PROVIDED
    assert not missing, f"{logical_id} can import {sorted(missing)}, which none of its layers installs"


def test_browser_image_requirements_provide_what_the_worker_imports():
    lines = requirement_lines(ROOT / "functions" / "outreach_browser_worker" / "requirements.txt")
    missing = reachable_third_party(ROOT / "functions" / "outreach_browser_worker" / "app.py") - provided_modules(lines)
    assert not missing, missing
