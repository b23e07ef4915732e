"""The README's contract: `funnel dev` (what `make dev` runs) starts from nothing, and the README's shell
walkthroughs run against it as written (only the ports and the printed credentials are filled in).

This starts its own `funnel dev` process on free ports with its own state directory, so it neither needs nor
disturbs a developer's running `make dev`.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import distinct_free_ports
from tests.support.readme import readme_block

ROOT = Path(__file__).resolve().parents[2]
FUNNEL = Path(sys.executable).parent / "funnel"


class FunnelDev:
    def __init__(self, state_dir: Path):
        self.api_port, self.moto_port, self.pg_port = distinct_free_ports(3)
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("FUNNEL_", "AWS_"))}
        self.process = subprocess.Popen(
            [str(FUNNEL), "dev", "--state-dir", str(state_dir), "--api-port", str(self.api_port),
             "--moto-port", str(self.moto_port), "--pg-port", str(self.pg_port)],
            cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, text: str, timeout: float = 120) -> None:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"funnel dev never printed {text!r}:\n{''.join(self.output[-40:])}") from None
            if text in line:
                return
            if line == "":
                raise AssertionError(f"funnel dev exited ({self.process.wait()}):\n{''.join(self.output[-40:])}")

    def printed(self, label: str) -> str:
        """A value from the start banner, e.g. ``printed("API key")``."""
        for line in self.output:
            if line.strip().startswith(label):
                return line.strip()[len(label):].split()[0]
        raise AssertionError(f"{label!r} not printed")

    def shell(self, script: str) -> str:
        script = script.replace("localhost:8000", f"localhost:{self.api_port}")
        script = script.replace("localhost:5055", f"localhost:{self.moto_port}")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture(scope="module")
def funnel_dev(tmp_path_factory):
    dev = FunnelDev(tmp_path_factory.mktemp("funnel-dev"))
    try:
        dev.wait_for("Ctrl-C stops everything")
        yield dev
    finally:
        code = dev.stop()
    assert code == 0, "".join(dev.output[-40:])
    assert "stopped; data kept in" in "".join(dev.output[-5:])


def test_api_walkthrough_runs_as_written(funnel_dev):
    script = readme_block("API walkthrough").replace("<printed password>", funnel_dev.printed("Password"))
    output = funnel_dev.shell(script)
    assert '"email":"owner@demo.example.com"' in output  # step 3: /v1/me with the new key
    assert '"api_key.create"' in output  # step 4: the audit log shows the key's creation
    assert '"status":422' in output  # a malformed id is a problem+json answer


def test_email_walkthrough_sends_a_campaign_opens_its_pixel_and_reads_its_stats(funnel_dev):
    key = funnel_dev.printed("API key")
    output = funnel_dev.shell(f'KEY={key}\nH="x-api-key: $KEY"\n' + readme_block("Document e-mails"))
    sent, pixel, stats = output.split("\n", 2)
    assert json.loads(sent)["status"] == "sending"
    assert pixel == "200 image/gif"
    stats = json.loads(stats)
    assert stats["sent"] == 1 and stats["opened"] == {"unique": 1, "total": 1}
    assert stats["rounds"][0]["opened"]["unique"] == 1 and stats["machine_events_excluded"] == 0


def test_accounts_walkthrough_signs_up_verifies_recovers_exports_and_schedules_deletion(funnel_dev):
    output = funnel_dev.shell(readme_block("Accounts")).splitlines()
    signed_up, refused, verified, sent, settings, reset, confirmed, ended, manifest, scheduled, cancelled = output
    assert json.loads(signed_up) == {"isolation": "pool", "email_verified": False}
    assert json.loads(refused)["status"] == 403 and "verif" in json.loads(refused)["detail"]
    assert json.loads(verified) == {"email_verified": True}
    assert json.loads(sent) == {"status": "sending"}
    assert json.loads(settings)["shortlink_domain"] == "go.acme.example.org"
    assert json.loads(settings)["send_window"]["timezone"] == "Asia/Tokyo"
    assert (reset, confirmed, ended) == ("202", "204", "401")
    manifest = json.loads(manifest)
    assert manifest["tenant"].startswith("acme-devrel") and manifest["tables"] > 20
    assert json.loads(scheduled) == {"scheduled": True}
    assert json.loads(cancelled) == {"deletion": None}
