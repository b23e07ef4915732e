"""The form engine against real Chromium: the shared example cases, variants written here,
review mode, the before_submit hook, the SSRF guard, screenshots, and the scorer via the CLI.

Pages are served by the forms scorer's own per-case server (``tests/fixtures/forms-examples``, a copy of
the shared example cases and scorer kept in the repository) and judged with its own judge, so "passes here"
means the same as "passes the benchmark".
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "tests" / "fixtures" / "forms-examples"
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install funnel[browser])")

from funnel.outreach.forms.engine import FormEngine  # noqa: E402 - after the skips above
from funnel.outreach.forms.model import SenderProfile, Status  # noqa: E402


def _load_scorer():
    spec = importlib.util.spec_from_file_location("formbench_scorer", EXAMPLES / "scorer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scorer = _load_scorer()
EXAMPLE_CASES = sorted(p for p in (EXAMPLES / "cases").iterdir() if (p / "expected.json").is_file())
SENDER = SenderProfile.from_dict(scorer.SENDER)


@pytest.fixture(scope="module")
def engine():
    try:
        with FormEngine(allow_hosts=["127.0.0.1"]) as warm_engine:
            yield warm_engine
    except Exception as exc:  # noqa: BLE001 - any launch failure means "no browser here"
        pytest.skip(f"Chromium could not be started: {exc}")


def _serve(case_dir: Path):
    expected = json.loads((case_dir / "expected.json").read_text(encoding="utf-8"))
    state, server, url = scorer.start_server(str(case_dir), expected)
    return expected, state, server, url


def _run_case(engine: FormEngine, case_dir: Path, **submit_options):
    expected, state, server, url = _serve(case_dir)
    try:
        result = engine.submit(url, SENDER, scorer.MESSAGE, **submit_options)
    finally:
        server.shutdown()
        server.server_close()
    return expected, state, result


@pytest.mark.parametrize("case_dir", EXAMPLE_CASES, ids=lambda p: p.name)
def test_example_case(engine, case_dir):
    expected, state, result = _run_case(engine, case_dir)
    reasons = scorer.judge(expected, result.status, state)
    assert not reasons, f"{result.status}: {result.message}; {reasons}"
    assert result.confirm_step == expected.get("confirm_step", False) or result.status != Status.SUBMITTED
    json.dumps(result.to_dict())  # the result must stay JSON-serialisable


# --------------------------------------------------------------------------
# variants of the patterns, written here
# --------------------------------------------------------------------------
PAGE = """<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>.hide{{display:none}} .req{{color:#c00}}</style></head><body>{body}</body></html>"""

PREFECTURES = "".join(f"<option>{p}</option>" for p in ("北海道", "埼玉県", "千葉県", "東京都", "神奈川県", "大阪府"))

VARIANTS: dict[str, dict] = {
    "english-form": {
        "lang": "en",
        "body": """<h1>Contact us</h1>
<form method="post" action="/contact/send">
<div><label for="fn">First name *</label><input id="fn" name="firstName" required></div>
<div><label for="ln">Last name *</label><input id="ln" name="lastName" required></div>
<div><label for="co">Company</label><input id="co" name="company"></div>
<div><label for="em">Work email *</label><input id="em" type="email" name="email" required></div>
<div><label for="ph">Phone number</label><input id="ph" type="tel" name="phone"></div>
<div><label for="topic">What can we help with?</label><select id="topic" name="topic" required>
<option value="">Please select</option><option>Support</option><option>Partnership</option><option>Other</option></select></div>
<div><label for="msg">How can we help? *</label><textarea id="msg" name="msg" required></textarea></div>
<div><input type="checkbox" id="pp" name="privacy" value="yes" required><label for="pp">I agree to the Privacy Policy</label></div>
<button type="submit">Send message</button></form>""",  # noqa: E501 - a page as served: wrapping it would change the markup under test
        "expected": {"expect_status": "submitted", "post_path": "/contact/send",
                     "fields": {"firstName": "first_name", "lastName": "last_name", "company": "company",
                                "email": "email", "phone": "phone", "topic": "inquiry_type", "msg": "message",
                                "privacy": "consent"},
                     "server": {"lang": "en", "required": ["firstName", "lastName", "email", "msg", "privacy"],
                                "choices": {"topic": ["Support", "Partnership", "Other"]}}},
    },
    "hiragana-kana-zip-whole-prefecture-select": {
        "body": f"""<h1>お問い合わせ</h1>
<form method="post" action="/inquiry/post">
<dl>
<dt>会社名<span class="req">※</span></dt><dd><input name="f_company" required></dd>
<dt>ご担当者名<span class="req">※</span></dt><dd><input name="f_name" placeholder="山田太郎" required></dd>
<dt>ふりがな<span class="req">※</span></dt><dd><input name="f_kana" required><small>ひらがなでご入力ください</small></dd>
<dt>メールアドレス</dt><dd><input type="email" name="f_mail" required></dd>
<dt>電話番号</dt><dd><input name="f_tel" placeholder="0312345678"> <small>ハイフンなしでご入力ください</small></dd>
<dt>郵便番号</dt><dd><input name="f_zip" placeholder="123-4567"></dd>
<dt>都道府県</dt><dd><select name="f_pref"><option value="">選択してください</option>{PREFECTURES}</select></dd>
<dt>ご住所</dt><dd><input name="f_addr"></dd>
<dt>ご用件</dt><dd><select name="f_type" required><option value="">---</option><option value="1">資料請求</option><option value="2">ご提案・営業</option><option value="3">その他</option></select></dd>
<dt>お問い合わせ内容</dt><dd><textarea name="f_body" required></textarea></dd>
</dl>
<label><input type="checkbox" name="f_agree" value="1" required> 個人情報の取り扱いについて同意する</label>
<input type="submit" value="送信する"></form>""",  # noqa: E501 - a page as served: wrapping it would change the markup under test
        "expected": {"expect_status": "submitted", "post_path": "/inquiry/post",
                     "fields": {"f_company": "company", "f_name": "full_name", "f_kana": "full_name_kana",
                                "f_mail": "email", "f_tel": "phone", "f_zip": "zip", "f_pref": "prefecture",
                                "f_addr": "address", "f_type": "inquiry_type", "f_body": "message",
                                "f_agree": "consent"},
                     "kana_script": {"f_kana": "hiragana"},
                     "server": {"required": ["f_company", "f_name", "f_kana", "f_mail", "f_type", "f_body", "f_agree"],
                                "formats": {"f_kana": "hiragana", "f_tel": "regex:[0-9]{10,11}", "f_zip": "zip"},
                                "choices": {"f_type": ["1", "2", "3"]}}},
    },
    "ajax-json-reply-cf7": {
        "body": """<h1>お問い合わせ</h1>
<div class="wpcf7"><form id="cf" action="/wp-json/contact-form-7/v1/contact-forms/7/feedback" method="post" class="wpcf7-form">
<p><label>お名前（必須）<input name="your-name"></label></p>
<p><label>メールアドレス（必須）<input type="email" name="your-email"></label></p>
<p><label>電話番号<input name="your-tel"></label></p>
<p><label>お問い合わせ内容<textarea name="your-message"></textarea></label></p>
<p><input type="submit" value="送信"></p>
<div class="wpcf7-response-output" aria-live="polite"></div></form></div>
<script>
document.getElementById('cf').addEventListener('submit', async (event) => {
  event.preventDefault();
  const reply = await fetch(event.target.action, {method: 'POST', body: new FormData(event.target)});
  const data = await reply.json();
  document.querySelector('.wpcf7-response-output').textContent = data.message;
});
</script>""",  # noqa: E501 - a page as served: wrapping it would change the markup under test
        "expected": {"expect_status": "submitted", "post_path": "/wp-json/contact-form-7/v1/contact-forms/7/feedback",
                     "fields": {"your-name": "full_name", "your-email": "email", "your-tel": "phone",
                                "your-message": "message"},
                     "server": {"response": "json_cf7", "required": ["your-name", "your-email", "your-message"]}},
    },
    "hubspot-style-json-post": {
        "body": """<h1>お問い合わせ</h1>
<form id="hs" class="hs-form">
<div class="hs-form-field"><label>姓</label><input name="lastname" required></div>
<div class="hs-form-field"><label>名</label><input name="firstname" required></div>
<div class="hs-form-field"><label>会社名</label><input name="company" required></div>
<div class="hs-form-field"><label>Eメール</label><input name="email" type="email" required></div>
<div class="hs-form-field"><label>ご相談内容</label><textarea name="message" required></textarea></div>
<input type="submit" class="hs-button" value="送信"></form>
<div id="done"></div>
<script>
document.getElementById('hs').addEventListener('submit', async (event) => {
  event.preventDefault();
  const fields = Array.from(new FormData(event.target)).map(([name, value]) => ({name, value}));
  const reply = await fetch('/submissions/v3/integration/submit/1/abc', {method: 'POST',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({fields})});
  const data = await reply.json();
  event.target.style.display = 'none';
  document.getElementById('done').textContent = data.inlineMessage || 'error';
});
</script>""",
        "expected": {"expect_status": "submitted", "post_path": "/submissions/v3/integration/submit/1/abc",
                     "fields": {"lastname": "last_name", "firstname": "first_name", "company": "company",
                                "email": "email", "message": "message"},
                     "server": {"response": "json_hubspot", "required": ["lastname", "firstname", "email", "message"]}},
    },
    "contact-link-from-top-page": {
        "body": """<header><nav><a href="/about/">会社概要</a> <a href="/recruit/">採用情報</a>
<a href="/support/contact.html">お問合せ</a></nav></header><h1>株式会社サンプル</h1><p>トップページ</p>""",
        "extra_files": {"support/contact.html": """<h1>お問い合わせフォーム</h1>
<form method="post" action="/support/mail.php"><table>
<tr><th>会社名</th><td><input name="c"></td></tr>
<tr><th>お名前</th><td><input name="n" required></td></tr>
<tr><th>メールアドレス</th><td><input name="m" required></td></tr>
<tr><th>メールアドレス（確認用）</th><td><input name="m2" required></td></tr>
<tr><th>電話番号</th><td><input name="t1" size="4">-<input name="t2" size="4">-<input name="t3" size="4"></td></tr>
<tr><th>内容</th><td><textarea name="b" required></textarea></td></tr></table>
<input type="submit" value="送信"></form>"""},
        "expected": {"expect_status": "submitted", "post_path": "/support/mail.php",
                     "fields": {"c": "company", "n": "full_name", "m": "email", "m2": "email_confirm",
                                "t1": "phone1", "t2": "phone2", "t3": "phone3", "b": "message"},
                     "server": {"required": ["n", "m", "m2", "b"], "formats": {"m2": "equals:m"}}},
    },
    "div-label-layout-opaque-names": {
        "body": """<h1>お問い合わせ</h1><form method="post" action="/form/send" class="form">
<div class="item"><div class="head">会社名 <em>必須</em></div><div class="body"><input name="item_01" required></div></div>
<div class="item"><div class="head">お名前 <em>必須</em></div><div class="body"><input name="item_02" required></div></div>
<div class="item"><div class="head">フリガナ</div><div class="body"><input name="item_03"></div></div>
<div class="item"><div class="head">メールアドレス <em>必須</em></div><div class="body"><input name="item_04" required></div></div>
<div class="item"><div class="head">電話番号</div><div class="body"><input name="item_05"></div></div>
<div class="item"><div class="head">お問い合わせ内容 <em>必須</em></div><div class="body"><textarea name="item_06" required></textarea></div></div>
<div class="item"><label><input type="checkbox" name="item_07" value="同意する" required>プライバシーポリシーに同意する</label></div>
<button type="submit">送信する</button></form>""",  # noqa: E501 - a page as served: wrapping it would change the markup under test
        "expected": {"expect_status": "submitted", "post_path": "/form/send",
                     "fields": {"item_01": "company", "item_02": "full_name", "item_03": "full_name_kana",
                                "item_04": "email", "item_05": "phone", "item_06": "message", "item_07": "consent"},
                     "kana_script": {"item_03": "katakana"},
                     "server": {"required": ["item_01", "item_02", "item_04", "item_06", "item_07"],
                                "response": "redirect", "thanks_path": "/form/thanks/"}},
    },
    "same-page-script-confirm-screen": {
        "body": """<h1>お問い合わせ</h1><form id="f" method="post" action="/contact/done">
<div id="input">
<p><label>会社名<input name="company" required></label></p>
<p><label>お名前<input name="name" required></label></p>
<p><label>メールアドレス<input type="email" name="email" required></label></p>
<p><label>お問い合わせ内容<textarea name="message" required></textarea></label></p>
<button type="button" id="toConfirm">入力内容を確認する</button></div>
<div id="confirm" class="hide"><p>以下の内容で送信します。</p><div id="summary"></div>
<button type="button" id="back">戻る</button> <button type="submit">送信する</button></div></form>
<script>
document.getElementById('toConfirm').addEventListener('click', () => {
  const form = document.getElementById('f');
  if (!form.reportValidity()) return;
  document.getElementById('summary').textContent = Array.from(new FormData(form)).map(([k, v]) => k + ': ' + v).join(' / ');
  document.getElementById('input').classList.add('hide');
  document.getElementById('confirm').classList.remove('hide');
});
document.getElementById('back').addEventListener('click', () => {
  document.getElementById('input').classList.remove('hide');
  document.getElementById('confirm').classList.add('hide');
});
</script>""",  # noqa: E501 - a page as served: wrapping it would change the markup under test
        "expected": {"expect_status": "submitted", "post_path": "/contact/done",
                     "fields": {"company": "company", "name": "full_name", "email": "email", "message": "message"},
                     "server": {"required": ["company", "name", "email", "message"]}},
    },
    "refusal-in-footer-note": {
        "body": """<h1>お問い合わせ</h1><form method="post" action="/contact/send">
<p><label>お名前<input name="name"></label></p><p><label>メール<input type="email" name="email"></label></p>
<p><label>内容<textarea name="message"></textarea></label></p><button>送信</button></form>
<p class="note">※営業を目的としたお問い合わせはご遠慮いただいております。</p>""",
        "expected": {"expect_status": "refused", "post_path": "/contact/send", "fields": {}},
    },
    "refusal-english": {
        "lang": "en",
        "body": """<h1>Contact</h1><p>Please note: no solicitations. We do not respond to sales pitches.</p>
<form method="post" action="/contact/send"><label>Name<input name="name"></label>
<label>Email<input type="email" name="email"></label><label>Message<textarea name="message"></textarea></label>
<button>Send</button></form>""",
        "expected": {"expect_status": "refused", "post_path": "/contact/send", "fields": {}},
    },
    "hcaptcha-script": {
        "body": """<h1>お問い合わせ</h1><form method="post" action="/contact/send">
<p><label>お名前<input name="name"></label></p><p><label>メール<input type="email" name="email"></label></p>
<p><label>内容<textarea name="message"></textarea></label></p><div class="h-captcha" data-sitekey="x"></div>
<button>送信</button></form><script src="https://js.hcaptcha.com/1/api.js" async defer></script>""",
        "expected": {"expect_status": "captcha", "post_path": "/contact/send", "fields": {}},
    },
    "business-hours-is-not-a-refusal": {
        "body": """<h1>お問い合わせ</h1><p>営業時間外のお問い合わせは翌営業日に回答いたします。</p>
<form method="post" action="/contact/send">
<p><label>お名前<input name="name" required></label></p><p><label>メール<input type="email" name="email" required></label></p>
<p><label>内容<textarea name="message" required></textarea></label></p><button>送信</button></form>""",  # noqa: E501 - a page as served: wrapping it would change the markup under test
        "expected": {"expect_status": "submitted", "post_path": "/contact/send",
                     "fields": {"name": "full_name", "email": "email", "message": "message"},
                     "server": {"required": ["name", "email", "message"]}},
    },
    "required-field-the-rules-cannot-fill": {
        "body": """<h1>お問い合わせ</h1><form method="post" action="/contact/send">
<p><label>お名前<input name="name" required></label></p><p><label>メール<input type="email" name="email" required></label></p>
<p><label>ご来店予定日<input name="visit_date" required></label></p>
<p><label>内容<textarea name="message" required></textarea></label></p><button>送信</button></form>""",  # noqa: E501 - a page as served: wrapping it would change the markup under test
        "expected": {"expect_status": "failed", "post_path": "/contact/send", "fields": {}},
    },
    "unsafe-form-action": {
        "body": """<h1>お問い合わせ</h1><form method="post" action="http://10.255.255.1/contact/send">
<p><label>お名前<input name="name"></label></p><p><label>メール<input type="email" name="email"></label></p>
<p><label>内容<textarea name="message"></textarea></label></p><button>送信</button></form>""",
        "expected": {"expect_status": "failed", "post_path": "/contact/send", "fields": {}},
    },
}


def _write_variant(root: Path, name: str, variant: dict) -> Path:
    case_dir = root / name
    case_dir.mkdir(parents=True)
    lang = variant.get("lang", "ja")
    (case_dir / "index.html").write_text(PAGE.format(lang=lang, title=name, body=variant["body"]), encoding="utf-8")
    for relative, body in variant.get("extra_files", {}).items():
        target = case_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(PAGE.format(lang=lang, title=relative, body=body), encoding="utf-8")
    (case_dir / "expected.json").write_text(json.dumps(variant["expected"], ensure_ascii=False), encoding="utf-8")
    return case_dir


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_case(engine, tmp_path, name):
    expected, state, result = _run_case(engine, _write_variant(tmp_path, name, VARIANTS[name]))
    reasons = scorer.judge(expected, result.status, state)
    assert not reasons, f"{result.status}: {result.message}; {reasons}"


def test_unsafe_form_action_is_reported_as_blocked(engine, tmp_path):
    _, _, result = _run_case(engine, _write_variant(tmp_path, "unsafe", VARIANTS["unsafe-form-action"]))
    assert result.status == Status.FAILED
    assert "SSRF" in result.message and "10.255.255.1" in result.message


# One sync Playwright per thread: these tests reconfigure the shared engine instead of starting another.
def test_entry_url_outside_the_allow_list_is_refused(engine, monkeypatch):
    monkeypatch.setattr(engine, "allow_hosts", ())
    _, state, server, url = _serve(EXAMPLES / "cases" / "001-cf7-basic")
    try:
        result = engine.submit(url, SENDER, scorer.MESSAGE)
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == Status.FAILED and "SSRF" in result.message
    assert state.gets == [] and state.posts == []


# --------------------------------------------------------------------------
# review mode, the before_submit hook, screenshots
# --------------------------------------------------------------------------
def test_dry_run_stops_on_the_confirm_screen(engine):
    _, state, result = _run_case(engine, EXAMPLES / "cases" / "003-mwwpform-confirm-split-tel", dry_run=True)
    assert result.status == Status.READY and result.confirm_step
    assert [post["kind"] for post in state.posts] == ["confirm"]


def test_dry_run_without_confirm_screen_posts_nothing(engine):
    _, state, result = _run_case(engine, EXAMPLES / "cases" / "007-label-for-split-name-kana", dry_run=True)
    assert result.status == Status.READY and not result.confirm_step
    assert state.posts == []
    assert {f.semantic: f.value for f in result.fields}["last_name_kana"] == "ヤマダ"


def test_before_submit_can_abort(engine):
    _, state, result = _run_case(engine, EXAMPLES / "cases" / "023-confirm-separate-urls-prg",
                                 before_submit=lambda: False)
    assert result.status == Status.ABORTED
    assert [post["kind"] for post in state.posts] == ["confirm"]


def test_before_submit_is_called_once_right_before_the_final_click(engine):
    calls: list[int] = []

    def record_then_allow() -> bool:
        calls.append(len(state_holder[0].posts))
        return True

    case_dir = EXAMPLES / "cases" / "023-confirm-separate-urls-prg"
    expected, state, server, url = _serve(case_dir)
    state_holder = [state]
    try:
        result = engine.submit(url, SENDER, scorer.MESSAGE, before_submit=record_then_allow)
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == Status.SUBMITTED and result.confirm_step
    assert calls == [1]  # after the confirm post, before the final one
    assert not scorer.judge(expected, result.status, state)


def test_screenshots_of_filled_form_and_result(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "screenshot_dir", tmp_path / "shots")
    _, _, result = _run_case(engine, EXAMPLES / "cases" / "006-table-layout-full")
    assert result.status == Status.SUBMITTED
    assert len(result.screenshots) == 2
    assert all(Path(p).is_file() and Path(p).stat().st_size > 0 for p in result.screenshots)
    assert result.screenshots[0].endswith("filled.png") and result.screenshots[1].endswith("result.png")


# --------------------------------------------------------------------------
# the acceptance benchmark itself, through the command line
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_scorer_passes_every_example_through_the_cli(tmp_path):
    command = (f"{sys.executable} -m funnel.cli form-submit {{url}} --sender {{sender}} "
               "--message-file {message} --json")
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "scorer.py"), "--cmd", command, "--timeout", "60",
         "--out", str(tmp_path / "score.json")],
        cwd=REPO, capture_output=True, text=True, timeout=60 * len(EXAMPLE_CASES),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "shared"),
                                                                        os.environ.get("PYTHONPATH")]))})
    last_line = completed.stdout.strip().splitlines()[-1]
    assert last_line == f"forms: {len(EXAMPLE_CASES)} passed, 0 failed", completed.stdout + completed.stderr
