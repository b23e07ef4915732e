"""Local company sites for outreach tests, each on its own loopback address (127.0.0.N), so every
site is its own company domain. They serve a contact page and record every POST."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

FORM = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>お問い合わせ | {name}</title></head><body>
<h1>お問い合わせ</h1>{notice}
<form method="post" action="/contact/">
<p><label for="company">会社名</label><input id="company" name="company" type="text" required></p>
<p><label for="your-name">お名前</label><input id="your-name" name="your-name" type="text" required></p>
<p><label for="email">メールアドレス</label><input id="email" name="email" type="email" required></p>
<p><label for="tel">電話番号</label><input id="tel" name="tel" type="tel"></p>
<p><label for="message">お問い合わせ内容</label><textarea id="message" name="message" required></textarea></p>
{captcha}
<p><input type="submit" value="送信する"></p>
</form></body></html>"""
THANKS = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>送信完了</title></head><body>
<h1>送信完了</h1><p>お問い合わせありがとうございました。</p></body></html>"""
NO_FORM = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{name}</title></head><body>
<h1>{name}</h1><p>会社概要のページです。</p></body></html>"""
KINDS = {
    "form": {"notice": "", "captcha": ""},
    "captcha": {"notice": "", "captcha": '<div class="g-recaptcha" data-sitekey="6LcX"></div>'
                                        '<script src="https://www.google.com/recaptcha/api.js" async></script>'},
    "refused": {"notice": "<p>※営業目的のお問い合わせはご遠慮ください。</p>", "captcha": ""},
}


class ContactSite:
    def __init__(self, host: str, kind: str = "form", name: str = "テスト株式会社") -> None:
        self.kind, self.name, self.posts = kind, name, []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _html(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 (http.server naming)
                if site.kind == "no_form":
                    return self._html(200, NO_FORM.format(name=site.name))
                if self.path.startswith("/contact/thanks"):
                    return self._html(200, THANKS)
                return self._html(200, FORM.format(name=site.name, **KINDS[site.kind]))

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                site.posts.append({k: v[0] for k, v in parse_qs(body).items()})
                self.send_response(303)
                self.send_header("location", "/contact/thanks/")
                self.end_headers()

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.host = host
        self.url = f"http://{host}:{self._server.server_address[1]}/contact/"

    def start(self) -> "ContactSite":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
