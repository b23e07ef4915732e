"""A TypeScript client generated from the OpenAPI document type-checks, and runs against the real API.

Contract tests live in ``tests/contract/``. The npm packages (openapi-typescript, openapi-fetch, typescript
5, exact versions in ``tests/contract/typescript/package-lock.json``) are installed by ``make test``
(``npm ci`` into the git-ignored ``node_modules``); node and npm come from
``scripts/install-system-deps.sh node``.

``tests/contract/typescript/client.ts`` reads typed fields from every area (me, users, API keys, runs and
steps, contacts, templates, tasks and targets, e-mail campaigns, stats and messages, notifications, sites,
articles) with no casts and no ``any``. An untyped response is ``{[key: string]: unknown}`` in the generated
types, so reading a field of it fails ``tsc --strict --noEmit``; the test fails with tsc's output.
The second test compiles the same program and runs it with node against the local runtime, where it checks
that every field it reads is present with the promised type.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent / "typescript"
NODE_MODULES = PACKAGE / "node_modules"


def _node_tools() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed (make test installs them: scripts/install-system-deps.sh node)")
    lock = PACKAGE / "package-lock.json"
    marker = NODE_MODULES / ".package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:  # pytest run without `make test`
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(PACKAGE)], check=True,
                       capture_output=True, timeout=300)


def _run(args: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        pytest.fail(f"{what} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return done.stdout


@pytest.fixture(scope="module")
def client_dir(tmp_path_factory) -> Path:
    """A directory with the document, its generated types (api.d.ts), client.ts and the tsconfig."""
    from funnel.api.app import create_app

    _node_tools()
    workdir = tmp_path_factory.mktemp("typescript-client")
    (workdir / "openapi.json").write_text(json.dumps(create_app().openapi()))
    for name in ("client.ts", "tsconfig.json"):
        shutil.copy(PACKAGE / name, workdir / name)
    (workdir / "package.json").write_text('{"type": "module"}')
    (workdir / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    _run(["node", str(NODE_MODULES / "openapi-typescript/bin/cli.js"), "openapi.json", "-o", "api.d.ts"],
         workdir, "openapi-typescript")
    return workdir


def test_the_client_program_has_no_casts_and_no_any():
    source = (PACKAGE / "client.ts").read_text()
    code = re.sub(r"//.*", "", source)
    assert not re.search(r"\bany\b", code), "client.ts uses `any`"
    assert not re.search(r"\bas\s+[A-Za-z{\[(]", code), "client.ts casts with `as`"
    assert "@ts-" not in code, "client.ts silences the type checker"


def test_a_typescript_client_of_the_document_type_checks(client_dir):
    _run(["node", str(NODE_MODULES / "typescript/bin/tsc"), "--strict", "--noEmit", "-p", "tsconfig.json"],
         client_dir, "tsc --strict --noEmit (an untyped response reads as `unknown`)")


@pytest.mark.slow
def test_the_typed_fields_are_there_at_run_time(runtime, api, client_dir):
    from tests.support.tenants import new_tenant

    _run(["node", str(NODE_MODULES / "typescript/bin/tsc"), "-p", "tsconfig.json", "--noEmit", "false",
          "--outDir", "out"], client_dir, "tsc")
    tenant = new_tenant()

    def post(path: str, body: dict) -> dict:
        answer = api.post(path, headers=tenant.headers, json=body)
        assert answer.status_code == 201, (path, answer.text)
        return answer.json()

    key = post("/v1/api-keys", {"name": "typescript client", "scope": "admin"})["key"]
    suffix = uuid.uuid4().hex[:8]
    contact = post("/v1/contacts", {"company_name": "株式会社テスト", "url": "http://127.0.0.1:9/",
                                    "email": f"info-{suffix}@example.com"})
    post("/v1/templates", {"title": "intro", "body": "はじめまして"})
    post("/v1/tasks", {"name": "typed", "mode": "review", "message": "はじめまして", "contact_ids": [contact["id"]],
                       "sender": {"company": "Funnel", "last_name": "山田", "first_name": "太郎",
                                  "email": "yamada@example.com"}})
    post("/v1/email-campaigns", {"name": "typed", "subject": "hello", "body": "hello", "from_name": "Funnel",
                                 "sender_identity": "Funnel Inc., Tokyo", "contact_ids": [contact["id"]]})
    post("/v1/notifications", {"recipient_ids": [tenant.owner_id], "title": "typed", "message": "hello"})
    post("/v1/sites", {"slug": f"blog-{suffix}", "wp_admin_url": "http://127.0.0.1:9/"})

    out = _run(["node", "out/client.js"], client_dir, "the client against the local API",
               env={"FUNNEL_API_URL": runtime.api_url, "FUNNEL_API_KEY": key})
    checked = json.loads(out.strip().splitlines()[-1])
    seeded = ("me", "users", "api_keys", "contacts", "templates", "tasks", "task_targets", "email_campaigns",
              "email_stats", "email_messages", "notifications", "sites")
    assert all(checked.get(area) for area in seeded), f"areas with nothing checked: {checked}"
