"""Form engine benchmark: seconds per form with a warm browser, and the forms scorer's pass count.

Run: .venv/bin/python benchmarks/forms_bench.py [--runs 3] [--screenshots] [--skip-scorer] [--skip-examples]

Every example case of tests/fixtures/forms-examples is served by the scorer's own server
and submitted --runs times through one warm FormEngine (browser start not included).
Then the scorer runs the `funnel form-submit` CLI on every case (one process and one
browser launch per case, as the acceptance benchmark does). Then every class of
tests/support/contact_sites_js.py (forms rendered late, embeds, iframes, shadow DOM, wizards, consent,
sites that do not accept) runs --runs times through the warm engine, beside the floor: a hand-scripted
Playwright fill of the same page (it knows the selectors and what to wait for) in the same Chromium,
in the same run. Prints tables; asserts nothing.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "tests" / "fixtures" / "forms-examples"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def load_scorer():
    spec = importlib.util.spec_from_file_location("formbench_scorer", EXAMPLES / "scorer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def warm_timings(runs: int, screenshots: bool) -> tuple[dict[str, list[float]], dict[str, str]]:
    from funnel.outreach.forms.engine import FormEngine
    from funnel.outreach.forms.model import SenderProfile

    scorer = load_scorer()
    sender = SenderProfile.from_dict(scorer.SENDER)
    cases = sorted(p for p in (EXAMPLES / "cases").iterdir() if (p / "expected.json").is_file())
    timings: dict[str, list[float]] = {}
    statuses: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as shots, \
            FormEngine(allow_hosts=["127.0.0.1"], screenshot_dir=shots if screenshots else None) as engine:
        for case in cases:
            expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
            for _ in range(runs):
                state, server, url = scorer.start_server(str(case), expected)
                try:
                    started = time.perf_counter()
                    result = engine.submit(url, sender, scorer.MESSAGE)
                    timings.setdefault(case.name, []).append(time.perf_counter() - started)
                finally:
                    server.shutdown()
                    server.server_close()
                ok = not scorer.judge(expected, result.status, state)
                statuses[case.name] = f"{result.status} ({'pass' if ok else 'FAIL'})"
    return timings, statuses


JS_SENDER = {"company": "株式会社ファネル", "last_name": "山田", "first_name": "太郎", "last_name_kana": "ヤマダ",
             "first_name_kana": "タロウ", "email": "taro.yamada@funnel.example", "phone": "03-1234-5678",
             "company_en": "Funnel Inc.", "last_name_en": "Yamada", "first_name_en": "Taro"}
JS_MESSAGE = "突然のご連絡失礼いたします。業務効率化のご提案でご連絡いたしました。"
JA_VALUES = {"company": JS_SENDER["company"], "name": "山田 太郎", "email": JS_SENDER["email"], "message": JS_MESSAGE}


def _fill(scope, values: dict[str, str], prefix: str = "") -> None:
    for name, value in values.items():
        scope.locator(f'{prefix}[name="{name}"]').fill(value)


def _floor_scripts():
    """Hand-written Playwright fills, one per class that should be submitted: what a person scripting
    that very page would write (its selectors, its waits). The floor the engine is compared with."""
    def plain(page, site, done="**/thanks/**", extra=None):
        page.goto(site.url)
        _fill(page, JA_VALUES)
        if extra:
            extra(page)
        page.locator('button[type="submit"]').click()
        page.wait_for_url(done) if done.startswith("**") else page.get_by_text(done).wait_for()

    def embed(page, site):
        page.goto(site.url)
        _fill(page, {"firstname": "Taro", "lastname": "Yamada", "email": JS_SENDER["email"],
                     "company": "Funnel Inc.", "message": JS_MESSAGE})
        page.locator("#hs-consent").check()
        page.locator(".hs-button").click()
        page.locator(".submitted-message").wait_for()

    def iframe(page, site):
        page.goto(site.url)
        frame = page.frame_locator("iframe")
        _fill(frame, JA_VALUES)
        frame.locator('button[type="submit"]').click()
        frame.get_by_text("送信完了").wait_for()

    def wizard2(page, site):
        page.goto(site.url)
        _fill(page, {k: JA_VALUES[k] for k in ("company", "name", "email")})
        page.locator("#next").click()
        _fill(page, {"tel": JS_SENDER["phone"], "message": JS_MESSAGE})
        page.locator('button[type="submit"]').click()
        page.wait_for_url("**/thanks/**")

    def wizard3(page, site):
        page.goto(site.url)
        _fill(page, {"name": "Taro Yamada", "email": JS_SENDER["email"]})
        page.get_by_role("button", name="Next").click()
        _fill(page, {"company": "Funnel Inc.", "phone": JS_SENDER["phone"]})
        page.get_by_role("button", name="Next").click()
        _fill(page, {"message": JS_MESSAGE})
        page.locator("#consent").check()
        page.get_by_role("button", name="Submit").click()
        page.get_by_text("Thank you").wait_for()

    def consent_terms(page, site):
        page.goto(site.url)
        _fill(page, JA_VALUES)
        page.locator("#terms").evaluate("(box) => { box.scrollTop = box.scrollHeight; }")
        page.locator("#agree").check()
        page.locator('button[type="submit"]').click()
        page.wait_for_url("**/thanks/**")

    return {
        "delayed": plain,
        "fetched": lambda page, site: plain(page, site, done="受け付けました"),
        "embed": embed,
        "iframe": iframe,
        "shadow": lambda page, site: plain(page, site, done="受け付けました"),
        "wizard2": wizard2,
        "wizard3": wizard3,
        "consent_terms": consent_terms,
        "consent_outside": lambda page, site: plain(page, site, extra=lambda p: p.locator("#agree-outside").check()),
        "thanks_same_url": lambda page, site: plain(page, site, done="ありがとうございます"),
    }


def js_timings(runs: int) -> list[tuple[str, list[float], list[float], str]]:
    """(kind, engine seconds, floor seconds, engine status) per JS site class, in one warm Chromium."""
    from funnel.outreach.forms.engine import FormEngine
    from funnel.outreach.forms.model import SenderProfile, Status
    from tests.support.contact_sites_js import KINDS, SUBMITTED_KINDS, JsContactSite

    sender = SenderProfile.from_dict(JS_SENDER)
    floors = _floor_scripts()
    rows = []
    with FormEngine(allow_hosts=["127.0.0.1", "127.0.0.2"], timeout=10) as engine:
        for kind in KINDS:
            engine_times, floor_times, statuses = [], [], set()
            for _ in range(runs):
                with JsContactSite(kind) as site:
                    started = time.perf_counter()
                    result = engine.submit(site.url, sender, JS_MESSAGE)
                    engine_times.append(time.perf_counter() - started)
                    right = (result.status == Status.SUBMITTED) == (kind in SUBMITTED_KINDS) \
                        and len(site.posts) == (kind in SUBMITTED_KINDS)
                    statuses.add(f"{result.status} ({'pass' if right else 'FAIL'})")
            for _ in range(runs if kind in floors else 0):
                with JsContactSite(kind) as site:
                    context = engine._browser.new_context(locale="ja-JP")  # the engine's own warm Chromium
                    try:
                        started = time.perf_counter()
                        floors[kind](context.new_page(), site)
                        floor_times.append(time.perf_counter() - started)
                    finally:
                        context.close()
            rows.append((kind, engine_times, floor_times, ", ".join(sorted(statuses))))
    return rows


def print_js_table(rows, runs: int) -> None:
    width = max(len(kind) for kind, *_ in rows)
    print(f"\nJS-rendered classes, warm browser, {runs} runs each; floor = hand-scripted Playwright fill")
    print(f"{'class'.ljust(width)}  {'median s':>8}  {'p95 s':>6}  {'floor med':>9}  {'floor p95':>9}  status")
    for kind, engine_times, floor_times, status in rows:
        floor = (f"{statistics.median(floor_times):9.3f}  {percentile(floor_times, 95):9.3f}" if floor_times
                 else f"{'-':>9}  {'-':>9}")
        print(f"{kind.ljust(width)}  {statistics.median(engine_times):8.3f}  {percentile(engine_times, 95):6.3f}  "
              f"{floor}  {status}")
    engine_all = [v for _, times, _, _ in rows for v in times]
    floor_all = [v for _, _, times, _ in rows for v in times]
    paired = [v for _, times, floor_times, _ in rows if floor_times for v in times]
    print(f"{'ALL'.ljust(width)}  engine median {statistics.median(engine_all):.3f} s"
          f"  p95 {percentile(engine_all, 95):.3f} s"
          f"  | on the floored classes {statistics.median(paired):.3f} s vs floor {statistics.median(floor_all):.3f} s"
          f" (p95 {percentile(floor_all, 95):.3f} s)")


def scorer_pass_line() -> tuple[str, float]:
    command = (f"{sys.executable} -m funnel.cli form-submit {{url}} --sender {{sender}} "
               "--message-file {message} --json")
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "shared"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, str(EXAMPLES / "scorer.py"), "--cmd", command, "--timeout", "60"],
                               cwd=ROOT, capture_output=True, text=True, env=env)
    lines = completed.stdout.strip().splitlines()
    elapsed = time.perf_counter() - started
    return (lines[-1] if lines else f"scorer printed nothing (rc={completed.returncode})"), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="submissions per case (default 3)")
    parser.add_argument("--screenshots", action="store_true", help="also store the two screenshots per form")
    parser.add_argument("--skip-scorer", action="store_true", help="do not run the scorer through the CLI")
    parser.add_argument("--skip-examples", action="store_true", help="only the JavaScript-rendered classes")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    if args.skip_examples:
        print_js_table(js_timings(args.runs), args.runs)
        return 0
    if not (EXAMPLES / "scorer.py").is_file():
        print(f"form examples not found at {EXAMPLES}", file=sys.stderr)
        return 2

    timings, statuses = warm_timings(args.runs, args.screenshots)
    width = max(len(name) for name in timings)
    print(f"warm browser, {args.runs} runs per case, screenshots {'on' if args.screenshots else 'off'}")
    print(f"{'case'.ljust(width)}  {'median s':>8}  {'max s':>6}  status")
    for name, values in timings.items():
        print(f"{name.ljust(width)}  {statistics.median(values):8.3f}  {max(values):6.3f}  {statuses[name]}")
    every = [v for values in timings.values() for v in values]
    print(f"{'ALL'.ljust(width)}  median {statistics.median(every):.3f} s   p95 {percentile(every, 95):.3f} s   "
          f"({len(every)} forms)")
    print_js_table(js_timings(args.runs), args.runs)
    if not args.skip_scorer:
        line, seconds = scorer_pass_line()
        print(f"scorer via CLI (cold process per case): {line}   [{seconds:.1f} s total]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
