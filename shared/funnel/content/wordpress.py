"""WordPress REST API client (``/wp-json/wp/v2``) with Application Passwords.

Every request goes through the SSRF guard (no redirects followed). Failures are
classified for the pipeline: timeouts, connection errors, 429 and 5xx are
``TransientError`` (retried); other 4xx are ``PermanentError`` (fail at once).
Publishing is idempotent: with a known ``wp_post_id`` the post is updated; without
one, the post is first looked up by its Funnel slug, so a publish whose answer
was lost never creates a second post.
"""
from __future__ import annotations

from dataclasses import dataclass

import httpx
import nh3

from funnel.content.errors import PermanentError, TransientError
from funnel.observability import tracer
from funnel.platform.ssrf import UnsafeUrlError, http_client, parse_url
from funnel.settings import get_settings

ALLOWED_TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "em", "figcaption", "figure", "h2", "h3", "h4",
                "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "strong", "sub", "sup", "table", "tbody",
                "td", "th", "thead", "tr", "u", "ul"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "td": {"colspan"},
                      "th": {"colspan", "scope"}}


def sanitize_html(html: str) -> str:
    """The only HTML that leaves Funnel: no script, style, event handlers or javascript: links."""
    return nh3.clean(html or "", tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")


def normalise_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    for suffix in ("/wp-admin", "/wp-json"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


@dataclass
class WordPressSite:
    base_url: str
    username: str
    app_password: str
    timeout: float = 30.0

    def _url(self, path: str) -> str:
        return f"{normalise_base_url(self.base_url)}/wp-json/wp/v2/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        url = self._url(path)
        try:
            parse_url(url)
            # The connection goes to the address the SSRF guard approves as it connects (no redirects).
            with tracer.subsegment("wordpress"), http_client(
                    get_settings().ssrf_allow_hosts, timeout=self.timeout, auth=(self.username, self.app_password),
                    headers={"User-Agent": "FunnelBot/1.0"}) as client:
                response = client.request(method, url, **kwargs)
        except UnsafeUrlError as exc:
            raise PermanentError(f"WordPress URL refused: {exc}") from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise TransientError(f"WordPress {method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"WordPress {method} {path} answered {response.status_code}: "
                                 f"{_error_text(response)}")
        if response.status_code >= 300:
            raise PermanentError(f"WordPress {method} {path} answered {response.status_code}: "
                                 f"{_error_text(response)}")
        return response

    # ------------------------------------------------------------ posts
    def find_post_by_slug(self, slug: str) -> dict | None:
        found = self.request("GET", "posts", params={"slug": slug, "status": "any", "context": "edit"}).json()
        return found[0] if isinstance(found, list) and found else None

    def upsert_post(self, *, post_id: int | None, slug: str, title: str, html: str, excerpt: str, status: str,
                    featured_media: int | None = None) -> dict:
        body: dict[str, str | int] = {"title": title, "content": sanitize_html(html), "excerpt": excerpt,
                                      "status": status, "slug": slug}
        if featured_media:
            body["featured_media"] = featured_media
        if post_id is None:
            existing = self.find_post_by_slug(slug)
            post_id = existing["id"] if existing else None
        if post_id is not None:
            return self.request("POST", f"posts/{post_id}", json=body).json()
        return self.request("POST", "posts", json=body).json()

    def set_status(self, post_id: int, status: str) -> dict:
        return self.request("POST", f"posts/{post_id}", json={"status": status}).json()

    def get_post(self, post_id: int) -> dict:
        return self.request("GET", f"posts/{post_id}", params={"context": "edit"}).json()

    def upload_media(self, filename: str, body: bytes, content_type: str, alt_text: str = "") -> dict:
        media = self.request("POST", "media", content=body, headers={
            "Content-Type": content_type, "Content-Disposition": f'attachment; filename="{filename}"'}).json()
        if alt_text:
            self.request("POST", f"media/{media['id']}", json={"alt_text": alt_text})
        return media


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict):
            return f"{body.get('code', '')} {body.get('message', '')}".strip()[:300]
    except ValueError:
        pass
    return response.text[:200]
