"""The scanners teams run before a deploy: cfn-lint with the serverless rules (cfn-lint-serverless) and checkov.

Both must report nothing. What is not fixed is suppressed inline in template.yaml, and each suppression says why:
a checkov skip carries a comment, and the only cfn-lint rule ignored is ES6000 ("a queue has no redrive policy")
on dead-letter queues, which are where redrives end. checkov lives in its own virtualenv (.venv-scan, made by
`make install`) because it pins boto3 and packaging versions the product cannot use.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from funnel_dev.template import load_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
CHECKOV = ROOT / ".venv-scan" / "bin" / "checkov"
ALLOWED_CFN_LINT_IGNORES = {"ES6000"}


def test_cfn_lint_with_the_serverless_rules_reports_nothing():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    run = subprocess.run([str(cfn_lint), "--append-rules", "cfn_lint_serverless.rules", "--", str(TEMPLATE)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_cfn_lint_ignores_only_redrive_on_dead_letter_queues():
    for lid, resource in load_yaml(TEMPLATE)["Resources"].items():
        ignored = set(resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", []))
        assert ignored <= ALLOWED_CFN_LINT_IGNORES, f"{lid} ignores {sorted(ignored - ALLOWED_CFN_LINT_IGNORES)}"
        if ignored:
            assert lid.endswith("DeadLetterQueue"), lid


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    assert CHECKOV.exists(), "checkov is installed by `make install` into .venv-scan"
    run = subprocess.run([str(CHECKOV), "-f", str(TEMPLATE), "--framework", "cloudformation", "--quiet",
                          "--compact", "--skip-download", "-o", "json"], capture_output=True, text=True, cwd=ROOT)
    report = json.loads(run.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_reports_no_failed_check(checkov_report):
    assert checkov_report["summary"]["parsing_errors"] == 0
    failed = [(f["check_id"], f["resource"], f["check_name"]) for f in checkov_report["results"]["failed_checks"]]
    assert not failed, "fix it, or skip it in the resource's Metadata with a comment saying why:\n" + \
        "\n".join(map(str, failed))


def test_every_checkov_skip_says_why():
    for lid, resource in load_yaml(TEMPLATE)["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(str(skip.get("comment", "")).split()) >= 5, f"{lid} skips {skip.get('id')} without a reason"
