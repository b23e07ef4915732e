"""Turn classified controls and the sender profile into fill actions.

Text values come as an ordered list of candidates ("03-1234-5678", then
"0312345678"): the page script keeps the first one the browser's own
constraint validation (pattern, type, maxlength) accepts, so a kana field with
``pattern="[ァ-ヶー]+"`` ends up without the space and a phone field that says
ハイフンなし gets digits only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from funnel.outreach.forms.fields import CHECKBOX, LEFT_EMPTY, RADIO, SELECT, Control, FieldInfo
from funnel.outreach.forms.model import SenderProfile
from funnel.outreach.forms.text import digits_only, katakana_to_hiragana, normalize

TEXT_MODE, SELECT_MODE, CHECK_MODE = "text", "select", "check"


@dataclass
class FillAction:
    fid: str
    mode: str
    candidates: list[str] = field(default_factory=list)


@dataclass
class PlannedFill:
    control: Control
    value: str                      # what the result reports (the first candidate until the page says otherwise)
    actions: list[FillAction]


# --------------------------------------------------------------------------
# value formatting
# --------------------------------------------------------------------------
_NO_HYPHEN_HINT = re.compile(r"ハイフン(なし|無し|不要|を?除|を?入れず|抜き|は?入れない)|半角数字のみ|数字のみ"
                             r"|without (hyphens?|dashes?)|no (hyphens?|dashes?)|digits only")
_MOBILE_PREFIXES = ("070", "080", "090", "050")


def split_phone(phone: str) -> tuple[str, str, str]:
    """03-1234-5678 -> ("03", "1234", "5678"); without separators guess the area code
    from the Japanese numbering plan (two digits for Tokyo/Osaka, three for mobiles)."""
    parts = [p for p in re.split(r"[^0-9]+", normalize(phone).replace("+81", "0")) if p]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    digits = digits_only(phone)
    if digits.startswith("81") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    if len(digits) == 11 or digits.startswith(_MOBILE_PREFIXES):
        return digits[:3], digits[3:7], digits[7:]
    if digits.startswith(("03", "06")):
        return digits[:2], digits[2:6], digits[6:]
    return digits[:3], digits[3:6], digits[6:]


def split_zip(postcode: str) -> tuple[str, str]:
    digits = digits_only(postcode)
    return digits[:3], digits[3:]


def _field_hints(info: FieldInfo) -> str:
    return normalize(" ".join((info.placeholder, info.suffix, info.title, info.labels, info.row_header)))


def _prefers_digits(info: FieldInfo, digit_count: int) -> bool:
    placeholder = normalize(info.placeholder)
    return bool(_NO_HYPHEN_HINT.search(_field_hints(info))) or info.type == "number" \
        or bool(re.fullmatch(r"\d{6,}", placeholder)) or 0 < info.maxlength <= digit_count


def _digit_variants(info: FieldInfo, formatted: str) -> list[str]:
    digits = digits_only(formatted)
    return [digits, formatted] if _prefers_digits(info, len(digits)) else [formatted, digits]


def _joined_variants(info: FieldInfo, first: str, second: str) -> list[str]:
    """Family and given name joined with the separator the placeholder shows, then the others."""
    placeholder = info.placeholder
    if "\u3000" in placeholder:
        separators = ["\u3000", " ", ""]
    elif " " in placeholder.strip():
        separators = [" ", "\u3000", ""]
    elif placeholder.strip() and not re.search(r"[a-zA-Z@]", placeholder):
        separators = ["", " ", "\u3000"]
    else:
        separators = [" ", "", "\u3000"]
    return [sep.join(p for p in (first, second) if p) for sep in separators]


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def full_address(sender: SenderProfile, has_prefecture_field: bool) -> str:
    address = sender.address
    if has_prefecture_field:
        return address.removeprefix(sender.prefecture) if sender.prefecture else address
    if sender.prefecture and not address.startswith(sender.prefecture):
        return sender.prefecture + address
    return address


def text_candidates(control: Control, sender: SenderProfile, message: str, subject: str,
                    english: bool, has_prefecture_field: bool) -> list[str]:
    """Values to try for a text-like control, best first (empty list: leave it empty)."""
    info, semantic = control.primary, control.semantic
    latin_last = sender.last_name_en if english and sender.last_name_en else ""
    latin_first = sender.first_name_en if english and sender.first_name_en else ""
    if semantic in ("full_name_kana", "last_name_kana", "first_name_kana"):
        convert = katakana_to_hiragana if control.kana_script == "hiragana" else (lambda s: s)
        if semantic == "last_name_kana":
            return _dedupe([convert(sender.last_name_kana)])
        if semantic == "first_name_kana":
            return _dedupe([convert(sender.first_name_kana)])
        return _dedupe([convert(v) for v in _joined_variants(info, sender.last_name_kana, sender.first_name_kana)])
    if semantic == "full_name":
        if latin_last and latin_first:
            return [f"{latin_first} {latin_last}"]
        return _dedupe(_joined_variants(info, sender.last_name, sender.first_name))
    phone_parts = split_phone(sender.phone) if sender.phone else ("", "", "")
    zip_parts = split_zip(sender.zip) if sender.zip else ("", "")
    simple = {
        "company": sender.company_en if english and sender.company_en else sender.company,
        "department": sender.department,
        "position": sender.position,
        "last_name": latin_last or sender.last_name,
        "first_name": latin_first or sender.first_name,
        "email": sender.email,
        "email_confirm": sender.email,
        "phone1": phone_parts[0], "phone2": phone_parts[1], "phone3": phone_parts[2],
        "zip1": zip_parts[0], "zip2": zip_parts[1],
        "prefecture": sender.prefecture,
        "address": full_address(sender, has_prefecture_field),
        "url": sender.url,
        "subject": subject,
        "message": message,
    }
    if semantic in simple:
        return _dedupe([simple[semantic]])
    if semantic == "phone" and sender.phone:
        return _dedupe(_digit_variants(info, "-".join(phone_parts)))
    if semantic == "zip" and sender.zip:
        return _dedupe(_digit_variants(info, "-".join(zip_parts)))
    return []


# --------------------------------------------------------------------------
# choices
# --------------------------------------------------------------------------
_PLACEHOLDER_OPTION = re.compile(r"選択|選んで|please|select|choose|^[-‐－―—=\s]*$")
# For a sales message the honest category is "proposal" / "other"; never a support or recruiting one.
INQUIRY_PREFERENCES = (
    re.compile(r"営業|ご?提案|セールス|協業|提携|取引|パートナー|partnership|proposal|sales|business"),
    re.compile(r"その他|そのほか|その他のお問い?合わ?せ|other"),
    re.compile(r"一般|general|お問い?合わ?せ|inquiry|enquiry"),
)
NEUTRAL_PREFERENCES = (re.compile(r"その他|そのほか|other|該当なし|特になし|none"),)
_CONSENT_YES = re.compile(r"同意する|同意します|同意の上|同意|承諾|agree|accept|はい|yes")
_CONSENT_NO = re.compile(r"しない|しません|disagree|decline|いいえ|^no$")


def real_options(options: list[dict[str, str]]) -> list[dict[str, str]]:
    """Options a person could pick: not the "選択してください" / "---" placeholder."""
    return [o for o in options
            if not (o.get("value", "") == "" or _PLACEHOLDER_OPTION.search(normalize(o.get("text", ""))))]


def choose_option(options: list[dict[str, str]], preferences) -> dict[str, str] | None:
    candidates = real_options(options)
    for preference in preferences:
        for option in candidates:
            if preference.search(normalize(option.get("text", "") + " " + option.get("value", ""))):
                return option
    return candidates[-1] if candidates else None


def choose_prefecture(options: list[dict[str, str]], prefecture: str) -> dict[str, str] | None:
    wanted = normalize(prefecture)
    stem = re.sub(r"[都道府県]$", "", wanted) if wanted != "北海道" else wanted
    for option in real_options(options):
        text, value = normalize(option.get("text", "")), normalize(option.get("value", ""))
        if wanted in (text, value) or (stem and (text.startswith(stem) or value.startswith(stem))):
            return option
    return None


def _choice_options(control: Control) -> list[dict[str, str]]:
    if control.kind == SELECT:
        return control.primary.options
    return [{"value": m.value or "on", "text": m.labels or m.value, "fid": m.fid} for m in control.members]


def _choose_for(control: Control, sender: SenderProfile) -> dict[str, str] | None:
    options = _choice_options(control)
    semantic = control.semantic
    if semantic == "prefecture":
        return choose_prefecture(options, sender.prefecture)
    if semantic == "inquiry_type":
        return choose_option(options, INQUIRY_PREFERENCES)
    if semantic == "consent":
        if control.kind == CHECKBOX:
            return options[0]
        agreeing = [o for o in options if _CONSENT_YES.search(normalize(o["text"] + " " + o["value"]))
                    and not _CONSENT_NO.search(normalize(o["text"]))]
        return agreeing[0] if agreeing else None
    if semantic == "position":
        matches = [o for o in real_options(options) if normalize(sender.position) in normalize(o["text"])]
        return matches[0] if matches else choose_option(options, NEUTRAL_PREFERENCES)
    if control.required:
        # A required question the rules do not know (how did you hear about us, ...): the neutral answer.
        if control.kind == CHECKBOX and len(options) == 1:
            return options[0]
        return choose_option(options, NEUTRAL_PREFERENCES)
    return None


def plan_fills(controls: list[Control], sender: SenderProfile, message: str, subject: str,
               english: bool = False) -> list[PlannedFill]:
    has_prefecture_field = any(c.semantic == "prefecture" for c in controls)
    planned: list[PlannedFill] = []
    for control in controls:
        if any(m.disabled or m.readonly for m in control.members):
            continue
        if control.kind in (SELECT, RADIO, CHECKBOX):
            if control.semantic in LEFT_EMPTY and not (control.semantic in ("unknown", "optin") and control.required):
                continue
            option = _choose_for(control, sender)
            if option is None:
                continue
            if control.kind == SELECT:
                action = FillAction(control.primary.fid, SELECT_MODE, [option["value"]])
            else:
                action = FillAction(option["fid"], CHECK_MODE, [option["value"]])
            planned.append(PlannedFill(control, option["value"], [action]))
            continue
        if control.semantic in LEFT_EMPTY:
            continue
        candidates = text_candidates(control, sender, message, subject, english, has_prefecture_field)
        if candidates:
            action = FillAction(control.primary.fid, TEXT_MODE, candidates)
            planned.append(PlannedFill(control, candidates[0], [action]))
    return planned

