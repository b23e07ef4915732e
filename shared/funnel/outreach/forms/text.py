"""Text normalisation shared by field classification, value formatting and page detection."""
from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
# Markers that decorate labels but say nothing about what the field is.
_LABEL_NOISE = re.compile(r"必須|任意|\brequired\b|\boptional\b|[*＊※:：]")


def normalize(text: str | None) -> str:
    """NFKC (full-width ASCII to ASCII, half-width kana to full-width), lower case, single spaces."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text or "")).strip().lower()


def label_text(text: str | None) -> str:
    """A label reduced to its meaning: normalised, without 必須/required markers."""
    return _WHITESPACE.sub(" ", _LABEL_NOISE.sub(" ", normalize(text))).strip()


def katakana_to_hiragana(text: str) -> str:
    return "".join(chr(ord(ch) - 0x60) if "ァ" <= ch <= "ヶ" else ch for ch in text)


def hiragana_to_katakana(text: str) -> str:
    return "".join(chr(ord(ch) + 0x60) if "ぁ" <= ch <= "ゖ" else ch for ch in text)


def to_full_width_katakana(text: str) -> str:
    """Any kana spelling (hiragana, half-width katakana) as full-width katakana.

    NFKC is applied character class by character class only: it would also turn
    full-width spaces into ASCII spaces, which some kana patterns reject.
    """
    widened = "".join(unicodedata.normalize("NFKC", ch) if "\uff61" <= ch <= "\uff9f" else ch for ch in text)
    return hiragana_to_katakana(widened)


def is_all_katakana(text: str) -> bool:
    stripped = re.sub(r"[\s\u3000ー・]", "", text)
    return bool(stripped) and all("ァ" <= ch <= "ヶ" for ch in stripped)


def is_all_hiragana(text: str) -> bool:
    stripped = re.sub(r"[\s\u3000ー・]", "", text)
    return bool(stripped) and all("ぁ" <= ch <= "ゖ" for ch in stripped)


def digits_only(text: str) -> str:
    return re.sub(r"\D", "", unicodedata.normalize("NFKC", text or ""))


def name_tokens(*attributes: str | None) -> list[str]:
    """Split HTML name/id attributes into lower-case words: ``tel[data][0]`` -> tel, data, 0;
    ``lastName`` -> last, name; ``email2`` -> email, 2."""
    tokens: list[str] = []
    for attribute in attributes:
        if not attribute:
            continue
        spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", attribute)
        spaced = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", spaced)
        tokens.extend(t for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t)
    return tokens
