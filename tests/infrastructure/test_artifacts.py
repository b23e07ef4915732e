"""The deployable artifacts, built the way `sam build` builds them, hold only the product and work.

- Each dependency layer (BuildMethod python3.12: layers/*/requirements.txt) is pip-installed for
  python3.12/arm64 into its own python/ folder, the SharedLayer with the Makefile's build-SharedLayer
  target (the product package, no dependencies). None holds the local runtime (funnel_dev, moto,
  funnel/local, ...); the unzipped size of each function (its layers + its code) is printed and
  bounded well below Lambda's 250 MB.
- arm64/cp312 binaries cannot be imported on this x86_64 machine, so the same requirement files are
  built again for this interpreter; a clean interpreter (``python -I -S``: no site-packages, only
  those folders and the function's code on sys.path) imports every handler, and provisions a tenant
  (alembic migrations from the package) against the test PostgreSQL.

pip's own cache makes re-runs fast; the first run downloads the wheels.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from funnel_dev.template import FUNCTION, load_yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * MB
BUDGET = 200 * MB  # headroom under the limit
ARM64 = ["--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.12",
         "--only-binary=:all:"]
# Never in an artifact: the dev-only distribution and what only it needs.
FORBIDDEN = ("funnel_dev", "moto", "uvicorn", "cfn_lint", "yaml", "werkzeug", "pytest", "funnel/local", "tests",
             "devtools")


def _pip(target: Path, *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             "--no-warn-conflicts", "--no-compile", "--target", str(target), *args],
                            cwd=ROOT, timeout=600, capture_output=True, text=True)
    assert result.returncode == 0, f"pip install {' '.join(args)}:\n{result.stderr[-3000:]}"


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and "__pycache__" not in f.parts)


def _template() -> dict:
    return load_yaml(ROOT / "template.yaml")["Resources"]


def _layers(resources: dict) -> dict[str, dict]:
    return {lid: r for lid, r in resources.items() if r["Type"] == "AWS::Serverless::LayerVersion"}


def _zip_functions(resources: dict) -> dict[str, dict]:
    return {lid: r for lid, r in resources.items()
            if r["Type"] == FUNCTION and r["Properties"].get("PackageType") != "Image"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """{"arm64": {layer: python/ dir}, "host": {...}}; the product (pure Python) is built once."""
    base = tmp_path_factory.mktemp("artifacts")
    layers = _layers(_template())
    product = base / "SharedLayer"
    subprocess.run(["make", "--no-print-directory", "build-SharedLayer", f"ARTIFACTS_DIR={product}",
                    f"PYTHON={sys.executable}"], check=True, cwd=ROOT, timeout=600, stdout=subprocess.DEVNULL)
    jobs = []
    out: dict[str, dict[str, Path]] = {"arm64": {}, "host": {}}
    for lid, layer in layers.items():
        if layer["Metadata"]["BuildMethod"] == "makefile":
            assert lid == "SharedLayer"
            out["arm64"][lid] = out["host"][lid] = product / "python"
            continue
        requirements = ROOT / layer["Properties"]["ContentUri"] / "requirements.txt"
        for flavour, extra in (("arm64", ARM64), ("host", [])):
            target = base / flavour / lid / "python"
            out[flavour][lid] = target
            jobs.append((target, [*extra, "-r", str(requirements)]))
    # The browser image: DepsLayer's requirements + Playwright (its own requirements file), host only.
    browser_lines = (ROOT / "functions" / "outreach_browser_worker" / "requirements.txt").read_text().splitlines()
    extra_lines = [line for line in browser_lines if line.strip() and not line.startswith(("#", "-r"))]
    out["host"]["browser"] = base / "host" / "browser" / "python"
    jobs.append((out["host"]["browser"], extra_lines))
    with ThreadPoolExecutor(max_workers=2) as pool:  # CI has 2 cores; pip mostly waits on unzip and I/O
        list(pool.map(lambda job: _pip(job[0], *job[1]), jobs))
    return out


def test_artifacts_hold_only_the_product(built):
    for lid, path in built["arm64"].items():
        for name in FORBIDDEN:
            assert not (path / name).exists(), f"{lid} holds {name}"
        assert not list(path.glob("funnel_dev*")) and not list(path.glob("moto*")), lid
    shared = built["arm64"]["SharedLayer"]
    assert sorted(p.name for p in shared.iterdir()) == ["funnel", "funnel-0.1.0.dist-info"]
    assert (shared / "funnel" / "migrations" / "tenant" / "env.py").is_file()
    assert list((shared / "funnel" / "migrations" / "tenant" / "versions").glob("*.py"))
    assert (shared / "funnel" / "notifications" / "templates.json").is_file()  # package data


def test_unzipped_size_per_function(built):
    resources = _template()
    sizes = {lid: _size(path) for lid, path in built["arm64"].items()}
    rows = []
    for lid, function in sorted(_zip_functions(resources).items()):
        refs = [ref["Ref"] for ref in function["Properties"]["Layers"]]
        code = _size(ROOT / function["Properties"]["CodeUri"])
        total = code + sum(sizes[ref] for ref in refs)
        rows.append((lid, total, " + ".join(f"{ref} {sizes[ref] / MB:.1f}" for ref in refs), code))
        assert total < BUDGET < LAMBDA_UNZIPPED_LIMIT, f"{lid}: {total / MB:.1f} MB unzipped"
    print("\nunzipped size per function (python3.12/arm64, MB):")
    for lid, total, parts, code in rows:
        print(f"  {lid:<30} {total / MB:6.1f}  = {parts} + code {code / 1024:.0f} KB")


def _clean_python(paths: list[Path], code: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run ``code`` in an interpreter without site-packages: only ``paths`` (then the stdlib) importable."""
    bootstrap = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n" + code
    return subprocess.run([sys.executable, "-I", "-S", "-c", bootstrap], capture_output=True, text=True,
                          env=env or {"PATH": os.environ.get("PATH", "")}, cwd=cwd, timeout=300)


IMPORT_HANDLER = """
import importlib.util
spec = importlib.util.spec_from_file_location("app", sys.path[0] + "/app.py")
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
assert callable(module.handler)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"funnel_dev", "moto", "uvicorn", "yaml", "cfn_lint"})
assert not leaked, leaked
assert all("site-packages" not in (getattr(m, "__file__", None) or "") for m in list(sys.modules.values()))
"""


def _handler_env() -> dict[str, str]:
    """A Lambda-like environment: the settings and AWS variables the handlers read, nothing else."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("FUNNEL_", "AWS_", "POWERTOOLS_"))}
    env.update({"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"),
                "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "test"),
                "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "test")})
    return env


def test_every_handler_imports_from_its_artifact_alone(built, tmp_path):
    resources = _template()
    cases = []
    for lid, function in sorted(_zip_functions(resources).items()):
        code = ROOT / function["Properties"]["CodeUri"]
        assert function["Properties"]["Handler"] == "app.handler", lid
        cases.append((lid, [code, *(built["host"][ref["Ref"]] for ref in function["Properties"]["Layers"])]))
    worker = ROOT / "functions" / "outreach_browser_worker"
    cases.append(("OutreachBrowserWorkerFunction", [worker, built["host"]["DepsLayer"], built["host"]["browser"],
                                            built["host"]["SharedLayer"]]))
    env = _handler_env()

    def check(case):
        lid, paths = case
        return lid, _clean_python(paths, IMPORT_HANDLER, env=env, cwd=tmp_path)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(check, cases))
    failures = {lid: r.stderr[-2000:] for lid, r in results if r.returncode != 0}
    assert not failures, failures


PROVISION = """
import json
from importlib.metadata import entry_points
from funnel.platform import migrations, tenants
tenant, owner = tenants.provision("Artifact check", OWNER, "correct horse battery staple", slug=SLUG)
print(json.dumps({"tenant": tenant.id, "migrations": str(migrations.MIGRATIONS_DIR),
                  "commands": sorted(ep.name for ep in entry_points(group="funnel.commands"))}))
"""


def test_a_tenant_is_provisioned_from_the_artifact(built, runtime, tmp_path):
    slug = f"artifact-{uuid.uuid4().hex[:8]}"
    code = f"OWNER = 'owner@{slug}.example.com'; SLUG = {slug!r}\n" + PROVISION
    paths = [built["host"]["DepsLayer"], built["host"]["SharedLayer"]]  # the smallest family's layers
    result = _clean_python(paths, code, env=_handler_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["migrations"].startswith(str(built["host"]["SharedLayer"]))  # not the checkout's migrations/
    assert answer["commands"] == []  # funnel dev / form-submit come from funnel-dev only
    from funnel import db
    from funnel.settings import get_settings

    with db.admin_connect(db.database_name(get_settings().control_database_url)) as conn:
        row = conn.execute("SELECT status FROM tenants WHERE slug = %s", (slug,)).fetchone()
    assert row["status"] == "active"
    shutil.rmtree(tmp_path, ignore_errors=True)
