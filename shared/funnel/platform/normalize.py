"""Normalising what users type or import: URLs, domains, phone numbers, company names."""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

from funnel.platform.errors import ValidationFailed

COMPANY_AFFIXES = re.compile(r"(株式会社|有限会社|合同会社|\(株\)|（株）|㈱|inc\.?|co\.,?\s*ltd\.?|ltd\.?|llc|corp\.?)",
                             re.IGNORECASE)


def normalize_url(raw: str, loc: list[str | int] | None = None) -> str:
    """``example.co.jp/contact`` -> ``https://example.co.jp/contact``; only http(s) with a host. Anything else is
    a ValidationFailed, naming ``loc`` (e.g. ``["body", "url"]``) when the caller gives the field."""

    def refused(message: str) -> ValidationFailed:
        return ValidationFailed.at(loc, message) if loc else ValidationFailed(message)

    text = unicodedata.normalize("NFKC", (raw or "").strip())
    if not text:
        raise refused("the URL is empty")
    if "://" not in text:
        text = "https://" + text
    try:  # urlsplit and .port raise ValueError on "http://[::1" or "host:80:80"; idna raises UnicodeError
        parts = urlsplit(text)
        if (parts.scheme.lower() not in ("http", "https") or not parts.hostname or "." not in parts.hostname
                or parts.username is not None  # "mailto:a@b.jp" or credentials are not a company's site
                or any(c.isspace() or ord(c) < 32 for c in parts.hostname)):
            raise ValueError("not a web address")
        host = parts.hostname.encode("idna").decode() if any(ord(c) > 127 for c in parts.hostname) else parts.hostname
        port = parts.port
    except ValueError as exc:
        raise refused(f"not a web address: {raw!r}") from exc
    netloc = host.lower() + (f":{port}" if port else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def domain_of(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def ascii_digits(raw: str | None) -> str:
    """The digits of ``raw`` as ASCII 0-9, whatever else it holds: full-width ``１２３`` (as Japanese input methods
    type numbers) counts as ``123``; separators and other scripts' digits that NFKC does not map to 0-9 are dropped,
    so the result always fits a ``[0-9]`` check."""
    return re.sub(r"[^0-9]", "", unicodedata.normalize("NFKC", raw or ""))


def normalize_phone(raw: str | None) -> str | None:
    return ascii_digits(raw) or None


def normalize_company(raw: str | None) -> str | None:
    text = unicodedata.normalize("NFKC", raw or "").lower()
    text = COMPANY_AFFIXES.sub("", text)
    text = re.sub(r"[\s・,.\-()（）]", "", text)
    return text or None


def normalize_email(raw: str | None) -> str | None:
    text = unicodedata.normalize("NFKC", raw or "").strip().lower()
    return text or None
