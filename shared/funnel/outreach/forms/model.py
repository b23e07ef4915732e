"""Sender profile and the result of one form run."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from funnel.outreach.forms.text import to_full_width_katakana


class Status:
    SUBMITTED = "submitted"    # the final submission was accepted (thanks page or message)
    CAPTCHA = "captcha"        # a CAPTCHA guards the form: nothing was submitted
    REFUSED = "refused"        # the site refuses sales solicitations: nothing was submitted
    NO_FORM = "no_form"        # no contact form could be found
    FAILED = "failed"          # validation error, unreachable or unsafe URL, unexpected page
    READY = "ready"            # review mode: filled (and confirm screen reached), not submitted
    ABORTED = "aborted"        # before_submit returned False: nothing was submitted


@dataclass
class SenderProfile:
    company: str = ""
    department: str = ""
    position: str = ""
    last_name: str = ""
    first_name: str = ""
    last_name_kana: str = ""      # katakana (hiragana or half-width input is converted)
    first_name_kana: str = ""
    email: str = ""
    phone: str = ""
    zip: str = ""
    prefecture: str = ""
    address: str = ""
    url: str = ""
    subject: str = ""             # default subject when the caller passes none
    # Latin spellings, used on English-language forms when present.
    company_en: str = ""
    last_name_en: str = ""
    first_name_en: str = ""

    def __post_init__(self) -> None:
        self.last_name_kana = to_full_width_katakana(self.last_name_kana)
        self.first_name_kana = to_full_width_katakana(self.first_name_kana)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SenderProfile:
        """Build from a JSON object; unknown keys are ignored, missing ones are empty."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: "" if value is None else str(value) for key, value in data.items() if key in known})


@dataclass
class FieldFill:
    name: str
    semantic: str
    value: str


@dataclass
class FormResult:
    status: str
    fields: list[FieldFill] = field(default_factory=list)
    confirm_step: bool = False
    final_url: str = ""
    message: str = ""
    screenshots: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
