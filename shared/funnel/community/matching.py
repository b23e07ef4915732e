"""The identity rules: what proves two accounts are one person, and what only suggests it.

Pure functions over ``Profile`` (an account as the rules see it); funnel.community.identity applies them to the
database. The traps users of DevRel tools keep reporting are rules here, each with its reason:

- **Certain** (linked on ingest): the same personal e-mail after normalisation (NFKC, case, ``mailto:``, Gmail
  dots and ``+tags``, googlemail = gmail), the same GitHub user id (a GitHub account, or the
  ``ID+login@users.noreply.github.com`` address GitHub writes into commits), the same phone, click id, mlid or
  key fingerprint.
- **Never evidence**: a shared company or free-mail domain; a role or no-reply address (``info@``, ``support@``,
  ``devrel@``, ``noreply@github.com``); a one-word display name ("Alex", "Ken"); a placeholder ("Deleted User",
  "ghost") or a bot (``[bot]``, dependabot); two accounts of one provider with different ids are two people.
- **Suggested** with a confidence and the evidence that produced it: the same full name (in any script and
  order: kanji, kana, romaji), handles, a handle spelled from the name, e-mail local parts; an organisation in
  common only adds to other evidence. Conflicting names or two different addresses at one company stop a
  suggestion.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from funnel.community.names import (
    NameKey,
    compact,
    fold_romaji,
    handle_spellings,
    is_bot_name,
    is_placeholder,
    name_key,
)

FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.jp", "ymail.com", "hotmail.com", "hotmail.co.jp",
    "outlook.com", "outlook.jp", "live.com", "live.jp", "msn.com", "icloud.com", "me.com", "mac.com", "aol.com",
    "proton.me", "protonmail.com", "pm.me", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com", "yandex.com",
    "yandex.ru", "mail.ru", "qq.com", "163.com", "126.com", "naver.com", "docomo.ne.jp", "ezweb.ne.jp",
    "au.com", "softbank.ne.jp", "i.softbank.jp", "nifty.com", "biglobe.ne.jp", "ocn.ne.jp", "so-net.ne.jp",
    "fastmail.com", "hey.com", "tutanota.com", "zoho.com", "users.noreply.github.com",
})
# Local parts that name a function, a list or a machine, not a person.
ROLE_LOCAL_PARTS = frozenset({
    "info", "information", "support", "help", "helpdesk", "admin", "administrator", "contact", "contactus", "sales",
    "hello", "hi", "team", "devrel", "dev", "developers", "developer", "community", "marketing", "press", "pr",
    "media", "news", "newsletter", "office", "billing", "accounts", "accounting", "finance", "hr", "jobs",
    "careers", "recruit", "recruiting", "security", "abuse", "postmaster", "hostmaster", "webmaster", "root",
    "mail", "email", "service", "services", "customerservice", "inquiry", "inquiries", "enquiries", "feedback",
    "events", "event", "notifications", "notification", "alerts", "system", "ops", "it", "legal", "privacy",
    "partners", "partner", "staff", "all", "everyone", "general", "mailer-daemon", "bounce", "bounces", "git",
    "github", "test", "example", "user", "owner", "oss", "opensource", "engineering", "tech", "contact-us",
})
NO_REPLY = re.compile(r"^(no-?reply|do-?not-?reply|donotreply|noreply[-+.].*|.*[-+.]noreply)$")
GITHUB_NOREPLY = re.compile(r"^(?:(\d+)\+)?([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\[bot\])?)@users\.noreply\.github\.com$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?\.[a-z0-9-]{2,63}$")
DOT_INSENSITIVE = frozenset({"gmail.com"})
SUBADDRESS_DOMAINS_DASH = frozenset({"yahoo.com", "ymail.com"})
IDENTIFIER_KINDS = ("email", "domain", "phone", "click_id", "mlid", "key_fp")
# Handles too common to tell people apart on their own.
GENERIC_HANDLES = frozenset({"admin", "user", "test", "dev", "developer", "coder", "hacker", "guest", "root", "me"})

CERTAIN = 1.0
MIN_SUGGESTION = 0.3


@dataclass(frozen=True)
class Email:
    value: str  # normalised: the identity of the mailbox
    local: str
    domain: str
    personal: bool  # a person's own mailbox (not a role, a list or a no-reply machine)
    free_mail: bool
    github_user_id: str | None = None
    github_login: str | None = None


def normalize_email(raw: str | None) -> Email | None:
    """The mailbox an address reaches, or None when it is not an address."""
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", raw).strip().strip("<>").strip()
    if text[:7].casefold() == "mailto:":
        text = text[7:].split("?", 1)[0]
    text = text.casefold()
    if not EMAIL.match(text):
        return None
    local, domain = text.rsplit("@", 1)
    domain = domain.rstrip(".")
    if domain == "googlemail.com":
        domain = "gmail.com"
    noreply = GITHUB_NOREPLY.match(f"{local}@{domain}")
    if noreply:
        user_id, login = noreply.groups()
        if user_id:  # the user id survives renames: it is the identity, the login is not
            return Email(f"{user_id}@users.noreply.github.com", user_id, domain, personal=True, free_mail=True,
                         github_user_id=user_id, github_login=login)
        return Email(f"{login}@users.noreply.github.com", login, domain, personal=not is_bot_name(login),
                     free_mail=True, github_login=login)
    base = local.split("+", 1)[0] if "+" in local[1:] else local  # RFC 5233 sub-addressing
    if domain in SUBADDRESS_DOMAINS_DASH and "-" in base[1:]:
        base = base.split("-", 1)[0]
    if domain in DOT_INSENSITIVE:
        base = base.replace(".", "")
    personal = not (base in ROLE_LOCAL_PARTS or NO_REPLY.match(local) or NO_REPLY.match(base)
                    or is_bot_name(base) or domain.startswith("noreply.") or ".noreply." in domain)
    return Email(f"{base}@{domain}", base, domain, personal=personal, free_mail=domain in FREE_MAIL_DOMAINS)


def github_noreply_email(user_id: str) -> str:
    """The key a GitHub account shares with the commits its user wrote (``ID+login@users.noreply.github.com``)."""
    return f"{user_id}@users.noreply.github.com"


def normalize_phone(raw: str | None) -> str | None:
    """E.164-like digits; a national Japanese number (0X0-...) is read as +81."""
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    digits = re.sub(r"\D", "", text)
    if len(digits) < 7:
        return None
    if text.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("0") and len(digits) in (10, 11):
        return "+81" + digits[1:]
    return "+" + digits


def normalize_domain(raw: str | None) -> str | None:
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", str(raw)).strip().casefold()
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0].split(":", 1)[0].rstrip(".")
    text = text[4:] if text.startswith("www.") else text
    return text if re.match(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?\.[a-z0-9-]{2,63}$", text) else None


def normalize_opaque(raw: Any) -> str | None:
    """click ids, mlids and key fingerprints: exact values, only trimmed (case may matter)."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    return text[:320] or None


@dataclass(frozen=True)
class Profile:
    """An account as the rules see it."""
    provider: str
    external_user_id: str
    handle: str | None = None
    email: Email | None = None
    name: NameKey | None = None
    org: str | None = None
    location: str | None = None
    machine: bool = False  # a bot or placeholder account: never linked to anything
    identifiers: tuple[tuple[str, str], ...] = field(default=())  # certain keys, (kind, value_normalized)

    @property
    def handle_key(self) -> str:
        """The handle as compared: letters and digits, romaji folded ("Hfujita" = "hfujita", "ryo1185" != "ryo8486")."""
        return fold_romaji(compact(self.handle))

    @property
    def handle_stem(self) -> str:
        """The handle without trailing digits, to compare with a name's spellings ("hanakoh87" -> "hanakoh")."""
        return fold_romaji(re.sub(r"\d+$", "", compact(self.handle)))

    @property
    def email_key(self) -> str:
        if not self.email or not self.email.personal or self.email.github_user_id:
            return ""
        return fold_romaji(compact(self.email.local))


def profile(provider: str, external_user_id: str, *, handle: str | None = None, email: str | None = None,
            display_name: str | None = None, org: str | None = None,
            attributes: dict[str, Any] | None = None) -> Profile:
    attributes = attributes or {}
    provider = provider.strip().casefold()
    normalized = normalize_email(email)
    machine = (is_bot_name(handle) or is_bot_name(display_name) or is_placeholder(handle)
               or (is_placeholder(display_name) and not handle)
               or (provider == "github" and (handle or "").casefold() in ("ghost", "deleted-user")))
    keys: list[tuple[str, str]] = []
    if provider == "github":
        keys.append(("email", github_noreply_email(external_user_id)))
    if normalized and normalized.personal and not machine:
        keys.append(("email", normalized.value))
    if not machine:
        for kind, raw in (("phone", attributes.get("phone")), ("click_id", attributes.get("click_id")),
                          ("mlid", attributes.get("mlid")), ("key_fp", attributes.get("key_fp")),
                          ("domain", attributes.get("personal_domain"))):
            value = (normalize_phone(raw) if kind == "phone" else normalize_domain(raw) if kind == "domain"
                     else normalize_opaque(raw))
            if value:
                keys.append((kind, value))
    org_key = _org_key(org) or (normalized.domain if normalized and not normalized.free_mail else None)
    location = attributes.get("location")
    return Profile(provider=provider, external_user_id=external_user_id, handle=handle, email=normalized,
                   name=None if machine else name_key(display_name), org=org_key,
                   location=unicodedata.normalize("NFKC", location).casefold().strip() if isinstance(location, str)
                   and location.strip() else None,
                   machine=machine, identifiers=tuple(dict.fromkeys(keys)))


def _org_key(org: str | None) -> str | None:
    if not org or not org.strip():
        return None
    domain = normalize_domain(org)
    return domain or compact(org) or unicodedata.normalize("NFKC", org).strip().casefold()


def match_keys(p: Profile) -> list[str]:
    """Blocking keys (accounts.match_keys): two accounts are compared only when they share one."""
    if p.machine:
        return []
    keys: set[str] = set()
    if p.name and p.name.full:
        keys.add("n:" + " ".join(p.name.tokens))
        for spelling in handle_spellings(p.name):
            keys.add("h:" + spelling)
        for token in p.name.tokens:  # a kanji given name has several readings: the family name still blocks
            if len(token) >= 3:
                keys.add("t:" + token)
    for core in (p.handle_key, p.handle_stem, p.email_key):
        if len(core) >= 3 and core not in GENERIC_HANDLES:
            keys.add("h:" + core)
    return sorted(keys)


@dataclass(frozen=True)
class Evidence:
    kind: str
    detail: str
    weight: float

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "weight": self.weight}


def _name_evidence(a: NameKey, b: NameKey) -> Evidence | None | bool:
    """Evidence from two full names; False when they contradict each other."""
    if a.tokens == b.tokens:
        if a.from_kanji or b.from_kanji:
            return Evidence("name_reading", f"same name read from kanji: {' '.join(a.tokens)}", 0.55)
        return Evidence("name", f"same full name: {' '.join(a.tokens)}", 0.6)
    if len(a.tokens) == 2 and len(b.tokens) == 2:
        for x in a.tokens:
            for y in b.tokens:
                if x == y and len(x) >= 3:
                    other_a = next(t for t in a.tokens if t != x) if a.tokens.count(x) == 1 else x
                    other_b = next(t for t in b.tokens if t != y) if b.tokens.count(y) == 1 else y
                    if (a.from_kanji or b.from_kanji) and other_a[:1] == other_b[:1]:
                        # 陽菜 is read haruna or hina: the family name agrees and the given names begin alike
                        return Evidence("name_partial", f"same family name {x}, given names {other_a}/{other_b} "
                                        "may be one name read two ways", 0.4)
                    if a.from_kanji or b.from_kanji:
                        return Evidence("name_partial", f"same family name {x}; given names read from kanji differ",
                                        0.2)
                    return False  # Yumi Suzuki and Yumi Hasegawa: the same given name, two people
    return False


def compare(a: Profile, b: Profile) -> list[Evidence] | None:
    """What two accounts of different developers have in common; None when they cannot be one person."""
    if a.machine or b.machine:
        return None
    if a.provider == b.provider and a.external_user_id != b.external_user_id:
        return None  # two accounts of one provider are two people until a user says otherwise
    if (a.email and b.email and a.email.personal and b.email.personal and not a.email.free_mail
            and a.email.domain == b.email.domain and a.email.value != b.email.value):
        return None  # a company gives a person one address: two addresses there are two people
    evidence: list[Evidence] = []
    name_conflict = False
    if a.name and b.name and a.name.full and b.name.full:
        found = _name_evidence(a.name, b.name)
        if found is False:
            name_conflict = True
        elif isinstance(found, Evidence):
            evidence.append(found)
    ha, hb = a.handle_key, b.handle_key
    if ha and ha == hb and len(ha) >= 3 and ha not in GENERIC_HANDLES:
        evidence.append(Evidence("handle", f"same handle on {a.provider} and {b.provider}: {ha}", 0.45))
    else:
        for x, y in ((a, b), (b, a)):
            if x.handle_stem and y.name and x.handle_stem in handle_spellings(y.name):
                evidence.append(Evidence("handle_from_name", f"{x.provider} handle {x.handle} spells the name "
                                         f"{' '.join(y.name.tokens)}", 0.35))
                break
    ea, eb = a.email_key, b.email_key
    if ea and eb and ea == eb and len(ea) >= 4 and a.email and b.email and a.email.value != b.email.value:
        evidence.append(Evidence("email_local_part", f"same e-mail name at {a.email.domain} and {b.email.domain}",
                                 0.5))
    elif ea and hb and ea == hb and len(ea) >= 4 and "handle" not in {e.kind for e in evidence}:
        evidence.append(Evidence("email_matches_handle", f"e-mail name {ea} is the {b.provider} handle", 0.4))
    elif eb and ha and eb == ha and len(eb) >= 4 and "handle" not in {e.kind for e in evidence}:
        evidence.append(Evidence("email_matches_handle", f"e-mail name {eb} is the {a.provider} handle", 0.4))
    if name_conflict:
        return None  # different names: a shared handle or mailbox name is a coincidence ("coder2")
    if not evidence:
        return None
    if a.org and a.org == b.org:
        evidence.append(Evidence("organization", f"same organization: {a.org}", 0.2))
    if a.location and a.location == b.location:
        evidence.append(Evidence("location", f"same location: {a.location}", 0.1))
    return evidence


def confidence(evidence: list[Evidence]) -> float:
    """Independent pieces of evidence combined (noisy-or), never certain: a person confirms a suggestion."""
    remaining = 1.0
    for item in evidence:
        remaining *= 1.0 - item.weight
    return round(min(0.95, 1.0 - remaining), 3)


def best_match(left: list[Profile], right: list[Profile]) -> tuple[float, list[Evidence]] | None:
    """The suggestion between two developers, from their accounts; None when any pair rules it out."""
    left_providers = {(p.provider, p.external_user_id) for p in left}
    for p in right:
        if any(provider == p.provider and ext != p.external_user_id for provider, ext in left_providers):
            return None
    best: tuple[float, list[Evidence]] | None = None
    for a in left:
        for b in right:
            found = compare(a, b)
            if found is None:
                if _contradicts(a, b):
                    return None
                continue
            score = confidence(found)
            if best is None or score > best[0]:
                best = (score, found)
    if best is None or best[0] < MIN_SUGGESTION:
        return None
    return best


def _contradicts(a: Profile, b: Profile) -> bool:
    """True when two accounts say the developers are different people (not merely unrelated)."""
    if a.machine or b.machine:
        return False
    if a.name and b.name and a.name.full and b.name.full and _name_evidence(a.name, b.name) is False:
        return True
    return bool(a.email and b.email and a.email.personal and b.email.personal and not a.email.free_mail
                and a.email.domain == b.email.domain and a.email.value != b.email.value)
