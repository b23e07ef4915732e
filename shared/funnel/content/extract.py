"""Main-text extraction from a product page (no third-party parser needed)."""
from __future__ import annotations

import re
from html.parser import HTMLParser

SKIP = {"script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg", "template", "iframe"}
BLOCK = {"p", "div", "section", "article", "main", "li", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "td"}


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip_depth = 0
        self.main_depth = 0
        self.title = ""
        self.in_title = False
        self.description = ""
        self.all_parts: list[str] = []
        self.main_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIP:
            self.skip_depth += 1
        elif tag in ("main", "article"):
            self.main_depth += 1
        elif tag == "title":
            self.in_title = True
        elif tag == "meta":
            attributes = dict(attrs)
            if (attributes.get("name") or attributes.get("property") or "").lower() in ("description",
                                                                                          "og:description"):
                self.description = self.description or (attributes.get("content") or "")
        if tag in BLOCK:
            self.all_parts.append("\n")
            if self.main_depth:
                self.main_parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP and self.skip_depth:
            self.skip_depth -= 1
        elif tag in ("main", "article") and self.main_depth:
            self.main_depth -= 1
        elif tag == "title":
            self.in_title = False

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
            return
        if self.skip_depth:
            return
        self.all_parts.append(data)
        if self.main_depth:
            self.main_parts.append(data)


def _clean(parts: list[str]) -> str:
    text = "".join(parts)
    lines = [re.sub(r"\s+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def extract(html: str, max_chars: int = 12_000) -> dict:
    """{"title", "description", "text"}: the <main>/<article> text when there is one, else the body's."""
    parser = _Extractor()
    parser.feed(html)
    parser.close()
    main = _clean(parser.main_parts)
    text = main if len(main) >= 80 else _clean(parser.all_parts)
    return {"title": re.sub(r"\s+", " ", parser.title).strip(), "description": parser.description.strip(),
            "text": text[:max_chars]}
