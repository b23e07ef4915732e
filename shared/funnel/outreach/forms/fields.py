"""Rule-based classification of form controls into sender-profile semantics.

Input is the per-control description the page snapshot script collects (own
label, placeholder, name/id, autocomplete, type, table header / dt text, the
inline text right before the control, ...). Every signal votes for a semantic
with a weight that reflects how specific it is: an input's own ``<label>`` or
the "姓" printed right before it says more than the ``<th>`` of a row that
holds a postcode, a prefecture select and an address together. Split fields
(phone in three, postcode in two, 姓/名 under one header) are resolved
afterwards by looking at neighbours that landed on the same semantic.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from funnel.outreach.forms.text import (
    is_all_hiragana,
    is_all_katakana,
    label_text,
    name_tokens,
    normalize,
)

# Control kinds (radio buttons and same-named checkboxes are grouped into one control).
TEXT, TEXTAREA, SELECT, RADIO, CHECKBOX = "text", "textarea", "select", "radio", "checkbox"
CHOICE_KINDS = frozenset({SELECT, RADIO, CHECKBOX})
TEXT_INPUT_TYPES = frozenset({"text", "email", "tel", "url", "number", "search", ""})

UNKNOWN = "unknown"
HONEYPOT = "honeypot"
# Semantics the engine recognises but deliberately leaves empty.
LEFT_EMPTY = frozenset({"building", "fax", "company_kana", "optin", UNKNOWN, HONEYPOT})
# Semantics a value can be produced for (the scorer's keys); also what an LLM hook may answer.
FILLABLE_SEMANTICS = frozenset({
    "company", "department", "position", "full_name", "last_name", "first_name", "full_name_kana",
    "last_name_kana", "first_name_kana", "email", "email_confirm", "phone", "phone1", "phone2", "phone3",
    "zip", "zip1", "zip2", "prefecture", "address", "url", "subject", "message", "inquiry_type", "consent",
})


@dataclass
class FieldInfo:
    """One form control as the snapshot script describes it (see page_scripts.SNAPSHOT)."""
    fid: str
    tag: str
    type: str = ""
    name: str = ""
    id: str = ""
    placeholder: str = ""
    autocomplete: str = ""
    aria_label: str = ""
    labels: str = ""
    title: str = ""
    pattern: str = ""
    maxlength: int = -1
    required: bool = False
    readonly: bool = False
    disabled: bool = False
    visible: bool = True
    label_visible: bool = False
    container_visible: bool = True
    later_step: bool = False        # hidden in a later step of a wizard (the snapshot's step heuristics)
    aria_hidden: bool = False
    tabindex: str = ""
    row_header: str = ""
    prefix: str = ""
    suffix: str = ""
    row_text: str = ""
    row_key: str = ""
    value: str = ""
    checked: bool = False
    options: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> FieldInfo:
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def kind(self) -> str:
        if self.tag == "textarea":
            return TEXTAREA
        if self.tag == "select":
            return SELECT
        if self.type in (RADIO, CHECKBOX):
            return self.type
        return TEXT


@dataclass
class Control:
    """A fillable unit: one input/select/textarea, or a radio/checkbox group sharing a name."""
    kind: str
    members: list[FieldInfo]
    semantic: str = UNKNOWN
    kana_script: str | None = None

    @property
    def primary(self) -> FieldInfo:
        return self.members[0]

    @property
    def name(self) -> str:
        return self.primary.name or self.primary.id or self.primary.fid

    @property
    def required(self) -> bool:
        return any(m.required for m in self.members) or "必須" in self.primary.row_header \
            or "必須" in self.primary.labels or "required" in normalize(self.primary.row_header)


# --------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------
# Short words that are still safe to find inside a longer name ("youremail", "mobilephone").
_SAFE_SHORT_SUBSTRINGS = frozenset({"email", "phone"})


def _words(*words: str) -> Callable[[list[str], str], bool]:
    """Match when a name token equals one of the words, or when a word of six letters
    or more occurs inside the joined name (``companyname``, ``zipcode``). Shorter words
    must be whole tokens: ``fname`` is a first name, but ``f_name`` is just a name."""
    exact = frozenset(words)
    inside = tuple(w for w in words if len(w) >= 6 or w in _SAFE_SHORT_SUBSTRINGS)

    def match(tokens: list[str], joined: str) -> bool:
        return any(t in exact for t in tokens) or any(w in joined for w in inside)

    return match


def _both(first: Callable[[list[str], str], bool], second: Callable[[list[str], str], bool]):
    return lambda tokens, joined: first(tokens, joined) and second(tokens, joined)


_MAIL_WORDS = _words("email", "mail", "mailaddress", "emailaddress", "eml")
_KANA_WORDS = _words("kana", "furigana", "hurigana", "furi", "yomi", "yomigana", "ruby", "phonetic",
                     "katakana", "hiragana")
_LAST_WORDS = _words("sei", "last", "family", "lname", "lastname", "surname", "myouji", "myoji", "familyname")
_FIRST_WORDS = _words("mei", "first", "given", "fname", "firstname", "givenname")
_COMPANY_WORDS = _words("company", "kaisha", "corp", "corporate", "corporation", "organization",
                        "organisation", "org", "firm", "houjin", "kigyo", "kigyou", "shamei", "business")

_KANA_LABEL = r"フリガナ|ふりがな|カナ|かな|よみがな|ヨミガナ|読み|kana|furigana|phonetic|pronunciation"
_STANDALONE_MEI = r"(?:^|[\s(（【/・:：])(?:名|メイ|めい)(?:$|[\s)）】/:：])"
_STANDALONE_SEI = r"(?:^|[\s(（【/・:：])(?:姓|セイ|せい)(?:$|[\s)）】/:：])"


@dataclass(frozen=True)
class Rule:
    semantic: str
    label: re.Pattern[str]
    name: Callable[[list[str], str], bool]
    kinds: frozenset[str]


def _rule(semantic: str, label: str, name, kinds=frozenset({TEXT})) -> Rule:
    return Rule(semantic, re.compile(label), name, frozenset(kinds))


# Order matters: for each signal the first rule whose pattern matches and whose
# kinds include the control's kind wins ("会社電話番号" is a phone, not a company).
RULES: tuple[Rule, ...] = (
    _rule("company_kana", rf"(会社|社名|企業|法人|団体).*({_KANA_LABEL})", _both(_COMPANY_WORDS, _KANA_WORDS)),
    _rule("email_confirm",
          r"(メール|mail|アドレス).*(確認|再入力|もう一度|再度|confirm|again|retype|re-?enter|verify)"
          r"|(確認|confirm).*(メール|mail)",
          _both(_MAIL_WORDS, _words("confirm", "confirmation", "conf", "cf", "again", "re", "verify",
                                    "retype", "check", "chk", "2"))),
    _rule("email", r"メール|e-?mail|mail|メアド", _MAIL_WORDS),
    _rule("last_name_kana", rf"^(せい|セイ)$|({_KANA_LABEL}).*{_STANDALONE_SEI}|{_STANDALONE_SEI}.*({_KANA_LABEL})"
          rf"|({_KANA_LABEL}).*(last|family)|(last|family).*({_KANA_LABEL})",
          _both(_KANA_WORDS, _LAST_WORDS)),
    _rule("first_name_kana", rf"^(めい|メイ)$|({_KANA_LABEL}).*{_STANDALONE_MEI}|{_STANDALONE_MEI}.*({_KANA_LABEL})"
          rf"|({_KANA_LABEL}).*(first|given)|(first|given).*({_KANA_LABEL})",
          _both(_KANA_WORDS, _FIRST_WORDS)),
    _rule("full_name_kana", _KANA_LABEL, _KANA_WORDS),
    _rule("url", r"url|ホームページ|website|web ?site|webサイト|サイト|homepage|\bhp\b",
          _words("url", "website", "homepage", "hp", "web", "site", "siteurl", "weburl")),
    _rule("phone", r"電話|tel|phone|携帯|mobile", _words("tel", "phone", "telephone", "denwa", "mobile", "keitai")),
    _rule("fax", r"^fax|ファックス|ファクス|fax番号", _words("fax")),
    _rule("zip", r"郵便|〒|zip|postal|post ?code",
          _words("zip", "zipcode", "postal", "postcode", "yubin", "yuubin", "pcode")),
    _rule("prefecture", r"都道府県|prefecture", _words("pref", "prefecture", "todofuken", "state"),
          {TEXT, SELECT}),
    _rule("building", r"建物|ビル名|マンション|building|apartment|suite",
          _words("building", "bldg", "tatemono", "apartment")),
    _rule("address", r"住所|所在地|address|市区町村|番地|city|street",
          _words("address", "addr", "adr", "jusho", "juusho", "jyusho", "city", "street", "town", "shozaichi"),
          {TEXT, TEXTAREA}),
    _rule("company", r"会社|御社|貴社|企業|法人|団体|組織|社名|屋号|勤務先|学校名|店舗名|company|organi[sz]ation"
          r"|corporation|business name|firm", _COMPANY_WORDS),
    _rule("department", r"部署|所属|部門|部課|department|dept|division",
          _words("department", "dept", "busho", "busyo", "division", "section", "shozoku", "syozoku")),
    _rule("position", r"役職|肩書|職位|position|job ?title",
          _words("position", "yakushoku", "yakusyoku", "jobtitle"), {TEXT, SELECT}),
    _rule("optin", r"メルマガ|メールマガジン|ニュースレター|newsletter|配信を希望|subscribe",
          _words("newsletter", "mailmagazine", "magazine", "merumaga", "subscribe", "optin"), {CHECKBOX}),
    _rule("consent", r"同意|プライバシー|個人情報|規約|承諾|了承|agree|privacy|consent|terms|policy|accept",
          _words("agree", "agreement", "privacy", "consent", "policy", "terms", "accept", "acceptance", "kojin",
                 "doui", "gdpr", "kiyaku"), {CHECKBOX, RADIO}),
    _rule("inquiry_type", r"種別|種類|区分|カテゴリ|分類|項目|用件|目的|問い?合わ?せ|問合せ|category|type|topic|reason"
          r"|regarding|kind|subject|inquiry|enquiry|about",
          _words("type", "category", "kind", "shubetsu", "syubetsu", "shurui", "syurui", "kubun", "topic",
                 "purpose", "reason", "youken", "inquiry", "enquiry", "subject", "koumoku"), CHOICE_KINDS),
    _rule("subject", r"件名|題名|表題|タイトル|subject|\btitle\b", _words("subject", "title", "kenmei", "daimei")),
    _rule("last_name", rf"(^|[^氏])姓(?!名)|苗字|名字|last ?name|family ?name|surname|{_STANDALONE_SEI}", _LAST_WORDS),
    _rule("first_name", rf"{_STANDALONE_MEI}|first ?name|given ?name", _FIRST_WORDS),
    _rule("full_name", r"氏名|姓名|名前|担当者|芳名|代表者|name",
          _words("name", "namae", "shimei", "simei", "onamae", "fullname", "yourname", "tantou", "tantousha")),
    _rule("message", r"内容|本文|メッセージ|質問|相談|要望|詳細|備考|意見|問い?合わ?せ|問合せ|message|comment|inquiry"
          r"|enquiry|question|details?|body|content|request|remarks|how can we help",
          _words("message", "msg", "comment", "comments", "body", "content", "contents", "naiyou", "naiyo",
                 "inquiry", "enquiry", "question", "detail", "details", "note", "notes", "honbun", "request",
                 "remarks", "biko", "bikou", "toiawase", "otoiawase"), {TEXT, TEXTAREA}),
)

AUTOCOMPLETE_SEMANTICS = {
    "organization": "company", "organization-title": "position", "name": "full_name",
    "family-name": "last_name", "given-name": "first_name", "email": "email", "tel": "phone",
    "tel-national": "phone", "tel-area-code": "phone1", "tel-local-prefix": "phone2",
    "tel-local-suffix": "phone3", "postal-code": "zip", "address-level1": "prefecture",
    "address-level2": "address", "street-address": "address", "address-line1": "address",
    "address-line2": "building", "url": "url",
}
INPUT_TYPE_SEMANTICS = {"email": "email", "tel": "phone", "url": "url"}

# Weights: how much one signal says about the control.
W_AUTOCOMPLETE, W_OWN_LABEL, W_PREFIX, W_NAME, W_PLACEHOLDER, W_TYPE, W_HEADER, W_TITLE = 5, 4, 4, 3, 3, 3, 2, 2
MIN_SCORE = 2

_HONEYPOT_HINT = re.compile(
    r"何も入力しない|入力しないで|空欄のまま|空のまま|leave (this |it )?(field )?(blank|empty)|do not (fill|enter|type)"
    r"|don't (fill|enter)|if you are (a )?human|honeypot|spam ?trap|bot ?trap")
_HONEYPOT_NAME = re.compile(r"honeypot|_wpcf7_ak_|ak_hp|hp_trap|bot_?check|spam_?trap", re.I)
_PREFECTURE_OPTION = re.compile(r"^(北海道|東京都?|大阪府?|京都府?|神奈川県?|愛知県?|福岡県?|沖縄県?)$")


def _label_rule(text: str, kind: str) -> str | None:
    cleaned = label_text(text)
    if not cleaned:
        return None
    for rule in RULES:
        if kind in rule.kinds and rule.label.search(cleaned):
            return rule.semantic
    return None


def _name_rule(tokens: list[str], kind: str) -> str | None:
    if not tokens:
        return None
    joined = "".join(tokens)
    for rule in RULES:
        if kind in rule.kinds and rule.name(tokens, joined):
            return rule.semantic
    return None


def _placeholder_shape(placeholder: str, kind: str) -> str | None:
    """Placeholders are often sample values rather than descriptions: recognise their shape."""
    if kind != TEXT:
        return None
    sample = normalize(placeholder)
    for prefix in ("例:", "例)", "例）", "例 ", "ex:", "e.g.", "例"):
        sample = sample.removeprefix(prefix).strip()
    if re.fullmatch(r"[^@\s]+@[^@\s]+", sample):
        return "email"
    if re.fullmatch(r"0\d{1,4}-?\d{1,4}-?\d{3,4}", sample):
        return "phone"
    if re.fullmatch(r"\d{3}-?\d{4}", sample):
        return "zip"
    if re.match(r"https?://", sample):
        return "url"
    raw = placeholder.strip()
    if (is_all_katakana(raw) or is_all_hiragana(raw)) and len(raw) >= 2:
        return "full_name_kana"
    return None


def _votes(control: Control) -> dict[str, float]:
    info, kind = control.primary, control.kind
    votes: dict[str, float] = {}

    def vote(semantic: str | None, weight: float) -> None:
        if semantic:
            votes[semantic] = votes.get(semantic, 0.0) + weight

    grouped = kind in (RADIO, CHECKBOX) and len(control.members) > 1
    for token in (info.autocomplete or "").lower().split():
        semantic = AUTOCOMPLETE_SEMANTICS.get(token)
        if semantic and (kind == TEXT or semantic in ("prefecture",)):
            vote(semantic, W_AUTOCOMPLETE)
    # A radio's own label is one of its options ("その他"), not the question.
    own_label_weight = 1 if grouped or kind == RADIO else W_OWN_LABEL
    vote(_label_rule(info.labels, kind), own_label_weight)
    vote(_label_rule(info.aria_label, kind), W_OWN_LABEL)
    vote(_label_rule(info.prefix, kind), W_PREFIX)
    vote(_label_rule(info.placeholder, kind) or _placeholder_shape(info.placeholder, kind), W_PLACEHOLDER)
    vote(_name_rule(name_tokens(info.name), kind), W_NAME)
    if info.id and info.id != info.name:
        vote(_name_rule(name_tokens(info.id), kind), W_NAME - 1)
    if kind == TEXT:
        vote(INPUT_TYPE_SEMANTICS.get(info.type), W_TYPE)
    vote(_label_rule(info.row_header, kind), W_HEADER + (1 if kind in (RADIO, CHECKBOX) else 0))
    vote(_label_rule(info.title, kind), W_TITLE)
    if kind == SELECT and sum(bool(_PREFECTURE_OPTION.match(o.get("text", "").strip())) for o in info.options) >= 3:
        vote("prefecture", W_AUTOCOMPLETE)
    return votes


def is_shown(control: Control) -> bool:
    """On screen now: a member is visible, or (styled checkboxes and radios) its label is."""
    return any(m.visible or (m.kind in (RADIO, CHECKBOX) and m.label_visible) for m in control.members)


def is_honeypot(control: Control) -> bool:
    """Trap fields meant to be left empty by humans: hidden, off-screen, aria-hidden,
    out of the tab order, or labelled "leave this empty". A control hidden inside a
    later step of a wizard (two controls or more in a step-like container) is not one."""
    info = control.primary
    hints = " ".join((info.labels, info.placeholder, info.aria_label, info.row_header, info.title))
    if _HONEYPOT_HINT.search(normalize(hints)) or _HONEYPOT_NAME.search(info.name or ""):
        return True
    if any(m.later_step for m in control.members):
        return False  # hidden because its step is not shown yet, not to trap bots
    if control.kind in (RADIO, CHECKBOX):
        # Styled checkboxes hide the real input and show the label instead.
        return not any(m.visible or m.label_visible for m in control.members) and not info.container_visible
    if control.kind == SELECT:
        # Select widgets (select2, choices.js) hide the real <select> inside a visible row.
        return info.aria_hidden and info.tabindex == "-1" or not (info.visible or info.container_visible)
    return not info.visible or info.aria_hidden or info.tabindex.strip() == "-1"


def kana_script(control: Control) -> str:
    """"katakana" or "hiragana": what the kana field asks for.

    The strongest evidence is a pattern attribute, then an explicit instruction
    near the field, then the script of the placeholder, then the script the label
    itself is written in (ふりがな suggests hiragana, フリガナ katakana)."""
    info = control.primary
    pattern = info.pattern or ""
    if re.search(r"ぁ|\\u3041|あ-|ぁ-", pattern):
        return "hiragana"
    if re.search(r"ァ|\\u30a1|\\u30A1|ア-|ァ-", pattern):
        return "katakana"
    for text in (" ".join((info.title, info.placeholder, info.suffix, info.labels, info.prefix)), info.row_text):
        if re.search(r"ひらがな|平仮名|hiragana", text, re.I):
            return "hiragana"
        if re.search(r"カタカナ|片仮名|katakana", text, re.I):
            return "katakana"
    placeholder = re.sub(r"^例[:：)）]?\s*", "", info.placeholder.strip())
    if is_all_hiragana(placeholder):
        return "hiragana"
    if is_all_katakana(placeholder):
        return "katakana"
    label = info.labels + info.prefix + info.row_header
    if re.search(r"ふりがな|よみがな|せい|めい", label) and not re.search(r"フリガナ|カナ|セイ|メイ", label):
        return "hiragana"
    return "katakana"


# --------------------------------------------------------------------------
# whole-form classification
# --------------------------------------------------------------------------
def build_controls(infos: list[FieldInfo]) -> list[Control]:
    """Group radios (and checkboxes sharing a name) into one control each, in DOM order."""
    controls: list[Control] = []
    groups: dict[tuple[str, str], Control] = {}
    for info in infos:
        if info.tag == "input" and info.type in ("hidden", "submit", "button", "image", "reset", "file", "password"):
            continue
        kind = info.kind
        if kind in (RADIO, CHECKBOX) and info.name:
            key = (kind, info.name)
            if key in groups:
                groups[key].members.append(info)
                continue
            groups[key] = Control(kind, [info])
            controls.append(groups[key])
            continue
        controls.append(Control(kind, [info]))
    return controls


def classify_control(control: Control) -> str:
    if is_honeypot(control):
        return HONEYPOT
    votes = _votes(control)
    if not votes:
        return UNKNOWN
    # Ties go to the rule listed first (the more specific one).
    order = {rule.semantic: index for index, rule in enumerate(RULES)}
    best = max(votes.items(), key=lambda item: (item[1], -order.get(item[0], len(order))))
    return best[0] if best[1] >= MIN_SCORE else UNKNOWN


_SPLITS = {
    "phone": ("phone1", "phone2", "phone3"),
    "zip": ("zip1", "zip2"),
    "full_name": ("last_name", "first_name"),
    "full_name_kana": ("last_name_kana", "first_name_kana"),
}


def _same_row(a: FieldInfo, b: FieldInfo) -> bool:
    return bool(a.row_key) and a.row_key == b.row_key or bool(a.row_header) and a.row_header == b.row_header


def _resolve_splits(controls: list[Control]) -> None:
    """Consecutive controls of one row that landed on the same whole-value semantic
    are the parts of a split value (電話 [03]-[1234]-[5678], 姓/名 under お名前)."""
    index = 0
    while index < len(controls):
        control = controls[index]
        parts = _SPLITS.get(control.semantic)
        if parts is None:
            index += 1
            continue
        run = [control]
        for follower in controls[index + 1:]:
            if follower.semantic == control.semantic and _same_row(control.primary, follower.primary):
                run.append(follower)
            else:
                break
        if len(run) == len(parts):
            for member, part in zip(run, parts, strict=True):
                member.semantic = part
        index += len(run)
    # A second e-mail field right after the first one is its confirmation.
    emails = [c for c in controls if c.semantic == "email"]
    for first, second in pairwise(emails):
        if controls.index(second) == controls.index(first) + 1:
            second.semantic = "email_confirm"


def classify_form(infos: list[FieldInfo]) -> list[Control]:
    controls = build_controls(infos)
    for control in controls:
        control.semantic = classify_control(control)
    _resolve_splits(controls)
    textareas = [c for c in controls if c.kind == TEXTAREA and c.semantic == UNKNOWN]
    if textareas and not any(c.semantic == "message" for c in controls):
        textareas[0].semantic = "message"
    for control in controls:
        if control.semantic in ("full_name_kana", "last_name_kana", "first_name_kana"):
            control.kana_script = kana_script(control)
    return controls
