"""Local company sites whose contact forms need a browser that waits and looks the way a person does, one class of
site per kind, for the form engine's tests and benchmark (``tests/support/contact_sites.py`` has the plain ones).

Every kind serves its contact page at ``/contact/`` and records each submission: ``posts`` holds the accepted ones
(every required field present, the honeypot empty), ``rejected`` the others, so "nothing was posted" is
``not site.posts and not site.rejected``. Kinds and what they test:

- ``delayed``: the form is inserted by a timer 0.9 s after load (no request involved).
- ``fetched``: a script fetches the form's definition (answered after 0.5 s), renders it, posts with fetch and
  shows the JSON reply's message.
- ``embed``: a HubSpot-like embed: the page's HTML has no ``<form>``, only a ``.hs-form-frame`` container and a
  script (served late) that fetches a definition and renders the form, posts JSON, shows the inline message.
- ``iframe``: the form lives in a cross-origin iframe (a second loopback address) and answers inside it.
- ``shadow``: the form lives in the open shadow root of a web component and answers there.
- ``wizard2``: two steps in the DOM (the second hidden until 次へ), a hidden honeypot beside them.
- ``wizard3``: three steps rendered one at a time by a script (as React does), consent on the last one.
- ``consent_terms``: the consent checkbox sits below a long terms box and is enabled only once the box has been
  scrolled to its end; the site answers 200 "同意が必要です" without it.
- ``consent_outside``: the consent checkbox sits outside the ``<form>``; a script refuses to submit without it.
- ``consent_locked``: the consent checkbox can never be ticked (it stays disabled): the site answers 200 with
  its "同意が必要です" message, which must be reported as a failure.
- ``validation_200``: the site answers 200 with the form again, a field marked ``aria-invalid`` and an error
  summary in words no error vocabulary knows.
- ``server_error``: the form post is answered 500.
- ``ajax_4xx``: the fetch post is answered 422 with a JSON message, and the page's script says thanks anyway.
- ``thanks_same_url``: the post is answered 200 on the same URL with a thank-you text.
- ``silent_200``: the post is answered 200 with a page that neither thanks nor complains (no evidence).
- ``captcha_late``: the rendered form comes with a reCAPTCHA widget.
- ``refused_late``: the rendered form comes with a refusal of sales inquiries.
- ``no_form_late``: a script renders only a newsletter box.
"""
from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.support.contact_sites import THANKS
from tests.support.network import LocalHTTPServer

KINDS = ("delayed", "fetched", "embed", "iframe", "shadow", "wizard2", "wizard3", "consent_terms", "consent_outside",
         "consent_locked", "validation_200", "server_error", "ajax_4xx", "thanks_same_url", "silent_200",
         "captcha_late", "refused_late", "no_form_late")
# The kinds a correct engine submits; the others must end without an accepted submission.
SUBMITTED_KINDS = ("delayed", "fetched", "embed", "iframe", "shadow", "wizard2", "wizard3", "consent_terms",
                   "consent_outside", "thanks_same_url")

PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>.hidden{{display:none}} .terms{{height:90px;overflow-y:scroll;border:1px solid #999}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""

JA_FIELDS = """<p><label for="company">会社名</label><input id="company" name="company" required></p>
<p><label for="name">お名前</label><input id="name" name="name" required></p>
<p><label for="email">メールアドレス</label><input id="email" name="email" type="email" required></p>
<p><label for="message">お問い合わせ内容</label><textarea id="message" name="message" required></textarea></p>"""
JA_FORM = ('<form method="post" action="/contact/">' + JA_FIELDS
           + '{extra}<p><button type="submit">送信する</button></p></form>')

# Renders JA_FORM into #slot after ``delay`` ms (a timer, no request).
RENDER_LATER = """<div id="slot">読み込み中…</div><script>
setTimeout(() => {{ document.getElementById('slot').innerHTML = {form}; }}, {delay});
</script>"""

FETCHED = """<div id="app">読み込み中…</div><script>
fetch('/api/form-config').then((r) => r.json()).then((config) => {
  const form = document.createElement('form');
  form.innerHTML = config.fields.map((f) => `<p><label for="${f.name}">${f.label}</label>` + (f.type === 'textarea'
    ? `<textarea id="${f.name}" name="${f.name}" required></textarea>`
    : `<input id="${f.name}" name="${f.name}" type="${f.type}" required>`) + '</p>').join('')
    + '<p><button type="submit">送信</button></p>';
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const reply = await fetch('/api/submit', {method: 'POST', body: new URLSearchParams(new FormData(form))});
    const data = await reply.json();
    document.getElementById('app').textContent = data.message;
  });
  document.getElementById('app').replaceChildren(form);
});
</script>"""
FORM_CONFIG = {"fields": [{"name": "company", "label": "会社名", "type": "text"},
                          {"name": "name", "label": "お名前", "type": "text"},
                          {"name": "email", "label": "メールアドレス", "type": "email"},
                          {"name": "message", "label": "お問い合わせ内容", "type": "textarea"}]}

EMBED_PAGE = """<p>Tell us about your project and we will get back to you.</p>
<div class="hs-form-frame" data-region="na1" data-form-id="f-123" data-portal-id="4242"></div>
<script src="/embed/forms.js" defer></script>"""
EMBED_SCRIPT = r"""
(() => {
  const frame = document.querySelector('.hs-form-frame');
  setTimeout(async () => {
    const definition = await (await fetch('/embed/definition.json')).json();
    const form = document.createElement('form');
    form.className = 'hs-form';
    form.noValidate = true;
    form.innerHTML = definition.fields.map((f) => `<div class="hs-form-field"><label for="hs-${f.name}">${f.label}`
      + `${f.required ? ' *' : ''}</label>` + (f.type === 'textarea'
        ? `<textarea id="hs-${f.name}" name="${f.name}"></textarea>`
        : `<input id="hs-${f.name}" name="${f.name}" type="${f.type}">`) + '</div>').join('')
      + '<div class="legal-consent-container"><input type="checkbox" id="hs-consent" name="LEGAL_CONSENT">'
      + '<label for="hs-consent">I agree to receive communications and accept the privacy policy.</label></div>'
      + '<input type="submit" class="hs-button" value="Submit">';
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const fields = Array.from(new FormData(form)).map(([name, value]) => ({name, value}));
      const reply = await fetch('/submissions/v3/integration/submit/4242/f-123', {
        method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({fields})});
      const data = await reply.json();
      const box = document.createElement('div');
      box.className = reply.ok ? 'submitted-message' : 'hs-error-msgs';
      box.innerHTML = data.inlineMessage || data.message;
      form.replaceWith(box);
    });
    frame.appendChild(form);
  }, 200);
})();
"""
EMBED_DEFINITION = {"fields": [{"name": "firstname", "label": "First name", "type": "text", "required": True},
                               {"name": "lastname", "label": "Last name", "type": "text", "required": True},
                               {"name": "email", "label": "Email", "type": "email", "required": True},
                               {"name": "company", "label": "Company name", "type": "text", "required": False},
                               {"name": "message", "label": "Message", "type": "textarea", "required": True}]}

IFRAME_PAGE = """<p>下記フォームよりお問い合わせください。</p>
<iframe src="{frame_url}" title="お問い合わせフォーム" width="640" height="560"></iframe>"""

SHADOW = """<contact-box></contact-box><script>
customElements.define('contact-box', class extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({mode: 'open'});
    root.innerHTML = `<style>label{display:block}</style><form id="inner">
      <label for="c">会社名</label><input id="c" name="company" required>
      <label for="n">お名前</label><input id="n" name="name" required>
      <label for="e">メールアドレス</label><input id="e" name="email" type="email" required>
      <label for="m">お問い合わせ内容</label><textarea id="m" name="message" required></textarea>
      <button type="submit">送信する</button></form><p id="out"></p>`;
    const form = root.getElementById('inner');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const reply = await fetch('/api/submit', {method: 'POST', body: new FormData(form)});
      const data = await reply.json();
      form.remove();
      root.getElementById('out').textContent = data.message;
    });
  }
});
</script>"""

WIZARD2 = """<form method="post" action="/contact/" id="wizard">
<div class="step" id="step1"><p>STEP 1 / 2</p>
<p><label for="company">会社名</label><input id="company" name="company" required></p>
<p><label for="name">お名前</label><input id="name" name="name" required></p>
<p><label for="email">メールアドレス</label><input id="email" name="email" type="email" required></p>
<p><button type="button" id="next">次へ</button></p></div>
<div class="step hidden" id="step2"><p>STEP 2 / 2</p>
<p><label for="tel">電話番号</label><input id="tel" name="tel" type="tel" required></p>
<p><label for="message">お問い合わせ内容</label><textarea id="message" name="message" required></textarea></p>
<p><button type="button" id="prev">前へ</button> <button type="submit">送信する</button></p></div>
<div class="hidden"><label for="hp">Website</label><input id="hp" name="hp_website"></div>
</form><script>
document.getElementById('next').addEventListener('click', () => {
  const fields = Array.from(document.querySelectorAll('#step1 input'));
  if (!fields.every((f) => f.reportValidity())) return;
  document.getElementById('step1').classList.add('hidden');
  document.getElementById('step2').classList.remove('hidden');
});
document.getElementById('prev').addEventListener('click', () => {
  document.getElementById('step2').classList.add('hidden');
  document.getElementById('step1').classList.remove('hidden');
});
</script>"""

WIZARD3 = r"""<div id="root"></div><script>
const steps = [
  [['name', 'Full name', 'text'], ['email', 'Work email', 'email']],
  [['company', 'Company', 'text'], ['phone', 'Phone number', 'tel']],
  [['message', 'How can we help?', 'textarea'], ['consent', 'I agree to the privacy policy', 'checkbox']],
];
const values = {};
let current = 0;
const render = () => {
  const root = document.getElementById('root');
  const last = current === steps.length - 1;
  root.innerHTML = `<form id="wizard" novalidate><p>Step ${current + 1} of ${steps.length}</p>`
    + steps[current].map(([name, label, type]) => type === 'textarea'
      ? `<div><label for="${name}">${label}</label><textarea id="${name}" name="${name}"></textarea></div>`
      : type === 'checkbox'
        ? `<div><input type="checkbox" id="${name}" name="${name}" value="yes">`
          + `<label for="${name}">${label}</label></div>`
        : `<div><label for="${name}">${label}</label><input id="${name}" name="${name}" type="${type}"></div>`).join('')
    + `<p class="problem" role="alert"></p>`
    + (current ? '<button type="button" id="back">Back</button>' : '')
    + `<button type="submit">${last ? 'Submit' : 'Next'}</button></form>`;
  const form = document.getElementById('wizard');
  if (current) document.getElementById('back').onclick = () => { current -= 1; render(); };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const [name, label, type] of steps[current]) {
      const el = form.elements[name];
      values[name] = type === 'checkbox' ? (el.checked ? el.value : '') : el.value;
      if (!values[name]) { form.querySelector('.problem').textContent = `${label} is required`; return; }
    }
    if (!last) { current += 1; setTimeout(render, 50); return; }
    const reply = await fetch('/api/submit', {method: 'POST', headers: {'content-type': 'application/json'},
                                              body: JSON.stringify(values)});
    const data = await reply.json();
    root.innerHTML = data.success ? "<h2>Thank you! We'll be in touch shortly.</h2>" : `<p>${data.message}</p>`;
  });
};
render();
</script>"""

TERMS = "".join(f"<p>第{n}条 個人情報の利用目的、第三者提供、開示請求その他の取り扱いについて定めます。</p>"
                for n in range(1, 16))
CONSENT_TERMS = (
    f'<div class="terms" id="terms">{TERMS}</div>'
    '<p><label><input type="checkbox" id="agree" name="agree" value="1" disabled>'
    ' 個人情報の取り扱いに同意する</label></p>'
    """<script>
const terms = document.getElementById('terms');
terms.addEventListener('scroll', () => {
  if (terms.scrollTop + terms.clientHeight >= terms.scrollHeight - 8) document.getElementById('agree').disabled = false;
});
</script>""")
CONSENT_LOCKED = ('<p><label><input type="checkbox" id="agree" name="agree" value="1" disabled>'
                  ' 個人情報の取り扱いに同意する（お電話で同意をいただいた方のみ）</label></p>')
CONSENT_OUTSIDE = """<form method="post" action="/contact/" id="f">""" + JA_FIELDS + """
<input type="hidden" name="agree" id="agree-value"><p><button type="submit">送信する</button></p></form>
<div class="policy"><label><input type="checkbox" id="agree-outside"> プライバシーポリシーに同意する</label></div>
<p id="problem" role="alert"></p><script>
document.getElementById('f').addEventListener('submit', (event) => {
  if (!document.getElementById('agree-outside').checked) {
    event.preventDefault();
    document.getElementById('problem').textContent = 'プライバシーポリシーへの同意が必要です';
    return;
  }
  document.getElementById('agree-value').value = '1';
});
</script>"""
AJAX_4XX = """<form id="f">""" + JA_FIELDS + """<p><button type="submit">送信する</button></p></form>
<p id="out"></p><script>
document.getElementById('f').addEventListener('submit', async (event) => {
  event.preventDefault();
  await fetch('/api/submit', {method: 'POST', body: new URLSearchParams(new FormData(event.target))});
  event.target.remove();
  document.getElementById('out').textContent = 'お問い合わせありがとうございました。';  // whatever the server said
});
</script>"""
CAPTCHA_WIDGET = '<div class="g-recaptcha" data-sitekey="6LcX"></div>'
REFUSAL = "<p>※営業目的のお問い合わせはご遠慮ください。</p>"
NEWSLETTER = """<form id="news" class="newsletter"><p><label for="nl">メールマガジン登録</label>
<input id="nl" name="email" type="email"></p><button type="submit">登録</button></form>"""

# What each kind's POST needs, and which field is a trap.
REQUIRED = {"embed": ("firstname", "lastname", "email", "message"), "wizard2": ("company", "name", "email", "tel",
            "message"), "wizard3": ("name", "email", "company", "phone", "message", "consent"),
            "consent_terms": ("company", "name", "email", "message", "agree"),
            "consent_outside": ("company", "name", "email", "message", "agree"),
            "consent_locked": ("company", "name", "email", "message", "agree")}
DEFAULT_REQUIRED = ("company", "name", "email", "message")
HONEYPOTS = {"wizard2": "hp_website"}
# Kinds whose site never accepts a submission, whatever it received.
REFUSING = ("validation_200", "server_error", "ajax_4xx", "silent_200")


def _page(kind: str, frame_url: str) -> str:
    title, lang = "お問い合わせ", "ja"

    def late(extra: str) -> str:
        return RENDER_LATER.format(form=json.dumps(JA_FORM.format(extra=extra)), delay=500)

    bodies = {
        "delayed": RENDER_LATER.format(form=json.dumps(JA_FORM.format(extra="")), delay=900),
        "fetched": FETCHED, "embed": EMBED_PAGE, "iframe": IFRAME_PAGE.format(frame_url=frame_url),
        "shadow": SHADOW, "wizard2": WIZARD2, "wizard3": WIZARD3,
        "consent_terms": JA_FORM.format(extra=CONSENT_TERMS), "consent_outside": CONSENT_OUTSIDE,
        "consent_locked": JA_FORM.format(extra=CONSENT_LOCKED),
        "validation_200": JA_FORM.format(extra=""), "server_error": JA_FORM.format(extra=""),
        "ajax_4xx": AJAX_4XX, "thanks_same_url": JA_FORM.format(extra=""), "silent_200": JA_FORM.format(extra=""),
        "captcha_late": late(CAPTCHA_WIDGET), "refused_late": late(REFUSAL),
        "no_form_late": RENDER_LATER.format(form=json.dumps(NEWSLETTER), delay=500),
    }
    if kind in ("embed", "wizard3"):
        title, lang = "Contact us", "en"
    return PAGE.format(lang=lang, title=title, body=bodies[kind])


VALIDATION_PAGE = PAGE.format(lang="ja", title="お問い合わせ", body="""<div class="error-summary" role="alert">
<p>送信前にご確認いただきたい点があります。</p></div><form method="post" action="/contact/">
<p><label for="email">メールアドレス</label><input id="email" name="email" type="email" aria-invalid="true"
 aria-describedby="email-note"><span id="email-note">このドメインのアドレスはご利用いただけません</span></p>
<p><label for="message">お問い合わせ内容</label><textarea id="message" name="message"></textarea></p>
<p><button type="submit">送信する</button></p></form>""")
CONSENT_MISSING_PAGE = PAGE.format(lang="ja", title="お問い合わせ", body="""<p class="form-message">
個人情報の取り扱いへの同意が必要です。お手数ですが、もう一度ご入力ください。</p>""" + JA_FORM.format(extra=""))
SERVER_ERROR_PAGE = PAGE.format(lang="ja", title="ただいまアクセスが集中しています",
                                body="<p>しばらく時間をおいてから、あらためてお試しいただけますと幸いです。</p>")
SAME_URL_THANKS = PAGE.format(lang="ja", title="お問い合わせ",
                              body="<p>お問い合わせいただきありがとうございます。担当者より折り返しご連絡いたします。</p>")
SILENT_PAGE = PAGE.format(lang="ja", title="お問い合わせ", body="<p>株式会社テストのウェブサイトです。</p>")
FRAME_FORM = PAGE.format(lang="ja", title="フォーム", body=JA_FORM.format(extra="").replace(
    'action="/contact/"', 'action="/embed/form"'))


class JsContactSite:
    """One site of ``kind`` on ``host`` (and, for ``iframe``, its form on ``frame_host``); see the module doc."""

    def __init__(self, kind: str, host: str = "127.0.0.1", frame_host: str = "127.0.0.2") -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        self.posts: list[dict[str, str]] = []
        self.rejected: list[dict[str, str]] = []
        self._frame_server = LocalHTTPServer(self._handler(), frame_host) if kind == "iframe" else None
        self.frame_url = (f"http://{frame_host}:{self._frame_server.port}/embed/form" if self._frame_server else "")
        self._server = LocalHTTPServer(self._handler(), host)
        self.url = f"http://{host}:{self._server.port}/contact/"

    def accept(self, values: dict[str, str]) -> bool:
        """Record a submission; True when the site accepts it."""
        required = REQUIRED.get(self.kind, DEFAULT_REQUIRED)
        trap = HONEYPOTS.get(self.kind)
        ok = all(values.get(name, "").strip() for name in required) and not (trap and values.get(trap)) \
            and self.kind not in REFUSING
        (self.posts if ok else self.rejected).append(values)
        return ok

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, body: str, content_type: str = "text/html; charset=utf-8",
                      location: str | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                if location:
                    self.send_header("location", location)
                self.end_headers()
                self.wfile.write(data)

            def _json(self, status: int, payload: dict) -> None:
                self._send(status, json.dumps(payload, ensure_ascii=False), "application/json")

            def do_GET(self):  # noqa: N802 (http.server naming)
                path = urlsplit(self.path).path
                if path.startswith(("/contact/thanks", "/embed/thanks")):
                    return self._send(200, THANKS)
                if path == "/api/form-config":
                    time.sleep(0.5)
                    return self._json(200, FORM_CONFIG)
                if path == "/embed/forms.js":
                    time.sleep(0.3)
                    return self._send(200, EMBED_SCRIPT, "text/javascript")
                if path == "/embed/definition.json":
                    return self._json(200, EMBED_DEFINITION)
                if path == "/embed/form":
                    return self._send(200, FRAME_FORM)
                if path == "/contact/":
                    return self._send(200, _page(site.kind, site.frame_url))
                return self._send(404, "<p>not found</p>")

            def _values(self) -> dict[str, str]:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                kind = self.headers.get("content-type") or ""
                if "json" in kind:
                    data = json.loads(raw or b"{}")
                    if isinstance(data.get("fields"), list):  # the embed's {"fields": [{name, value}]}
                        return {f["name"]: str(f["value"]) for f in data["fields"]}
                    return {k: str(v) for k, v in data.items()}
                if "multipart" in kind:
                    from email.parser import BytesParser
                    from email.policy import default

                    message = BytesParser(policy=default).parsebytes(
                        b"content-type: " + kind.encode() + b"\r\n\r\n" + raw)
                    return {part.get_param("name", header="content-disposition"):
                            part.get_payload(decode=True).decode("utf-8") for part in message.iter_parts()}
                return {k: v[0] for k, v in parse_qs(raw.decode()).items()}

            def do_POST(self):  # noqa: N802
                values = self._values()
                path = urlsplit(self.path).path
                accepted = site.accept(values)
                if site.kind == "server_error":
                    return self._send(500, SERVER_ERROR_PAGE)
                if site.kind == "ajax_4xx":
                    return self._json(422, {"message": "送信を受け付けられませんでした。時間をおいてお試しください。"})
                if site.kind == "validation_200":
                    return self._send(200, VALIDATION_PAGE)
                if site.kind == "silent_200":
                    return self._send(200, SILENT_PAGE)
                if path.startswith("/api/") or path.startswith("/submissions/"):
                    if site.kind == "embed":
                        return self._json(200 if accepted else 400, {"inlineMessage": "Thanks for submitting the form."}
                                          if accepted else {"message": "Please complete all required fields."})
                    if site.kind == "wizard3":
                        return self._json(200, {"success": True} if accepted
                                          else {"success": False, "message": "Something is missing."})
                    said = "お問い合わせを受け付けました。" if accepted else "入力内容に不備があります。"
                    return self._json(200, {"ok": accepted, "message": said,
                                            "status": "mail_sent" if accepted else "validation_failed"})
                if not accepted:
                    return self._send(200, CONSENT_MISSING_PAGE if "agree" in REQUIRED.get(site.kind, ()) else
                                      VALIDATION_PAGE)
                if site.kind == "thanks_same_url":
                    return self._send(200, SAME_URL_THANKS)
                thanks = "/embed/thanks/" if path.startswith("/embed/") else "/contact/thanks/"
                return self._send(303, "", location=thanks)

        return Handler

    def start(self) -> JsContactSite:
        if self._frame_server:
            self._frame_server.start()
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._frame_server:
            self._frame_server.stop()

    def __enter__(self) -> JsContactSite:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
