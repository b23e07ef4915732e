"""People's names as comparable keys, whatever script and order they were written in.

"Hina Fujita", "FUJITA Hina", "ふじた ひな", "フジタ ヒナ" and "藤田 陽菜" are one name: each becomes a set of
romaji tokens in one spelling (Hepburn, long vowels folded: "Gotou", "Gotō", "Goto" and "Gotoh" are one token).
Kana has one reading; kanji has several (陽菜 is hina or haruna), so a token read from kanji is marked as a
reading and counts for less (funnel.community.matching). The reading dictionary (pykakasi) is loaded on first use.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pykakasi

KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SPLIT = re.compile(r"[\s,、・·.\u3000_/|()\[\]{}<>\"'`-]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_LETTERS = re.compile(r"[^a-z]")

# Names that are not a person's: a deleted account, a default, a test.
PLACEHOLDER_NAMES = frozenset({
    "deleted user", "deleteduser", "deleted-user", "ghost", "unknown", "anonymous", "anon", "n/a", "na", "none",
    "null", "nil", "undefined", "user", "test", "test user", "guest", "someone", "no name", "noname", "name",
    "admin", "administrator", "root", "me", "-", "?", "名無し", "匿名", "ゲスト", "テスト", "不明", "未設定",
})


@dataclass(frozen=True)
class NameKey:
    """A name as sorted romaji tokens; ``from_kanji`` when a token came from a kanji reading."""
    tokens: tuple[str, ...]
    from_kanji: bool

    @property
    def full(self) -> bool:
        """Two or more tokens (given and family name): one token ("Ryo", "Alex") says little about a person."""
        return len(self.tokens) >= 2


@cache
def _kakasi() -> pykakasi.kakasi:
    import pykakasi

    return pykakasi.kakasi()


def fold_romaji(token: str) -> str:
    """One spelling for the romanisations of a Japanese syllable sequence (Hepburn, Kunrei, long vowels)."""
    t = token
    for old, new in (("sya", "sha"), ("syu", "shu"), ("syo", "sho"), ("tya", "cha"), ("tyu", "chu"), ("tyo", "cho"),
                     ("zya", "ja"), ("zyu", "ju"), ("zyo", "jo"), ("si", "shi"), ("ti", "chi"), ("tu", "tsu"),
                     ("zi", "ji")):
        t = t.replace(old, new)
    t = re.sub(r"(?<![sc])hu", "fu", t)
    t = re.sub(r"m(?=[bmp])", "n", t)  # Homma / Honma
    t = re.sub(r"oh(?![aeiou])", "o", t)  # Gotoh, Ohno
    t = re.sub(r"(?<=o)u|(?<=o)o", "", t)  # Gotou, Satoo -> Goto, Sato
    t = re.sub(r"([aeiu])\1", r"\1", t)  # Yuuko -> Yuko
    return t


def _latin(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _japanese_tokens(text: str) -> tuple[list[str], bool]:
    tokens: list[str] = []
    from_kanji = False
    for part in _SPLIT.split(text):
        if not part:
            continue
        if not (KANA.search(part) or KANJI.search(part)):
            tokens.append(_latin(part))
            continue
        # kakasi splits "井上健" into 井上 / 健: a name written without a space still has two tokens
        for piece in _kakasi().convert(part):
            reading = _LETTERS.sub("", piece["hepburn"].casefold())
            if reading:
                tokens.append(reading)
                from_kanji = from_kanji or bool(KANJI.search(piece["orig"]))
    return tokens, from_kanji


@lru_cache(maxsize=65536)
def name_key(display_name: str | None) -> NameKey | None:
    """The comparable form of a person's name, or None for no name, a placeholder or a bot."""
    if not display_name:
        return None
    text = unicodedata.normalize("NFKC", display_name).strip()
    if not text or text.casefold() in PLACEHOLDER_NAMES or is_bot_name(text):
        return None
    from_kanji = False
    if KANA.search(text) or KANJI.search(text):
        raw, from_kanji = _japanese_tokens(text)
    else:
        raw = [_latin(part) for part in _SPLIT.split(_CAMEL.sub(" ", text)) if part]
    tokens = [fold_romaji(_LETTERS.sub("", token)) for token in raw]
    tokens = [token for token in tokens if token]
    if not tokens:
        return None
    return NameKey(tuple(sorted(tokens)), from_kanji)


BOT_NAME = re.compile(r"(\[bot\]|[-_ ]bot|^bot[-_ ]|^bot$|\bbot\b)$|^(dependabot|renovate|github-actions|codecov|"
                      r"snyk|greenkeeper|mergify|imgbot|allcontributors|pre-commit-ci|semantic-release)\b",
                      re.IGNORECASE)


def is_bot_name(text: str | None) -> bool:
    return bool(text) and bool(BOT_NAME.search(text.strip()))  # type: ignore[union-attr]


def is_placeholder(text: str | None) -> bool:
    if not text:
        return False
    return unicodedata.normalize("NFKC", text).strip().casefold() in PLACEHOLDER_NAMES


def compact(text: str | None) -> str:
    """Letters and digits only, folded: the form in which handles and e-mail local parts are compared."""
    if not text:
        return ""
    return re.sub(r"[^0-9a-z]", "", _latin(unicodedata.normalize("NFKC", text)))


def handle_spellings(key: NameKey) -> set[str]:
    """Handles a person of this name commonly picks (hanakohayashi, hayashihanako, hhayashi, hanakoh...)."""
    if len(key.tokens) != 2:
        return set()
    a, b = key.tokens
    spellings: set[str] = set()
    for first, last in ((a, b), (b, a)):
        spellings |= {first + last, first[0] + last, first + last[0]}
    return spellings


def describe(key: NameKey | Any) -> str:
    return " ".join(key.tokens) if isinstance(key, NameKey) else ""
