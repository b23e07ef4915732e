"""Local company sites for outreach tests, each on its own loopback address (127.0.0.N), so every
site is its own company domain. They serve a contact page and record every submission in ``posts``.

Kinds: ``form`` (posts straight to /contact/), ``confirm`` (確認 -> a confirm screen with hidden fields
-> 送信 -> thanks; only the final POST is a submission, the confirm POSTs are in ``confirms``),
``captcha`` (reCAPTCHA widget), ``refused`` (営業お断り notice), ``no_form``."""
from __future__ import annotations

import html
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from tests.support.network import LocalHTTPServer

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
CONFIRM_FORM = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>お問い合わせ | {name}</title></head><body>
<h1>お問い合わせ</h1><p>内容をご入力のうえ「確認画面へ」を押してください。</p>
<form method="post" action="/contact/confirm/">
<table>
<tr><th><label for="company">会社名</label></th><td><input id="company" name="company" type="text" required></td></tr>
<tr><th><label for="name">お名前</label></th><td><input id="name" name="name" type="text" required></td></tr>
<tr><th><label for="email">メールアドレス</label></th><td><input id="email" name="email" type="email" required></td></tr>
<tr><th><label for="body">お問い合わせ内容</label></th><td><textarea id="body" name="body" required></textarea></td></tr>
</table>
<p><input type="submit" value="確認画面へ"></p>
</form></body></html>"""  # noqa: E501 - a page as served: wrapping it would change the markup under test
CONFIRM_SCREEN = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>入力内容の確認</title></head><body>
<h1>入力内容の確認</h1><p>以下の内容で送信します。よろしければ「送信する」を押してください。</p>
<form method="post" action="/contact/send/"><table>{rows}</table>
<p><input type="submit" name="back" value="戻る" formaction="/contact/"> <input type="submit" value="送信する"></p>
</form></body></html>"""  # noqa: E501 - a page as served: wrapping it would change the markup under test


class ContactSite:
    def __init__(self, host: str, kind: str = "form", name: str = "テスト株式会社", port: int = 0) -> None:
        self.kind, self.name, self.posts, self.confirms = kind, name, [], []
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
                if site.kind == "confirm":
                    return self._html(200, CONFIRM_FORM.format(name=site.name))
                return self._html(200, FORM.format(name=site.name, **KINDS[site.kind]))

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                values = {k: v[0] for k, v in parse_qs(body).items()}
                if site.kind == "confirm" and self.path.startswith("/contact/confirm"):
                    site.confirms.append(values)
                    rows = "".join(f'<tr><th>{html.escape(k)}</th><td>{html.escape(v)}'
                                   f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"></td></tr>'
                                   for k, v in values.items())
                    return self._html(200, CONFIRM_SCREEN.format(rows=rows))
                site.posts.append(values)
                self.send_response(303)
                self.send_header("location", "/contact/thanks/")
                self.end_headers()

        self._server = LocalHTTPServer(Handler, host, port)
        self.host = host
        self.url = f"http://{host}:{self._server.port}/contact/"

    def start(self) -> ContactSite:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


def main() -> None:
    """Serve one site for trying a send task by hand: python -m tests.support.contact_sites --port 8123"""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--kind", default="form", choices=["form", "confirm", "captcha", "refused", "no_form"])
    args = parser.parse_args()
    site = ContactSite(args.host, args.kind, port=args.port).start()
    print(f"{args.kind} site on {site.url} (Ctrl-C to stop); submissions are printed here", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.5)
            for post in site.posts[seen:]:
                print("POST", post, flush=True)
            seen = len(site.posts)
    except KeyboardInterrupt:
        site.stop()


if __name__ == "__main__":
    main()
