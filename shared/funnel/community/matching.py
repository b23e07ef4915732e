"""The identity rules: what proves two accounts are one person, and what only suggests it.

Pure functions over ``Profile`` (an account as the rules see it); funnel.community.identity applies them to the
database. The traps users of DevRel tools keep reporting are rules here, each with its reason:

- **Certain** (linked on ingest): the same personal e-mail after normalisation (NFKC, case, ``mailto:``, a name
  and angle brackets, spaces; Gmail dots and ``+tags``, googlemail = gmail), the same GitHub user id (a GitHub
  account, or the ``ID+login@users.noreply.github.com`` address GitHub writes into commits; the old
  ``login@users.noreply.github.com`` form is the account's login), the same phone, click id, mlid or key
  fingerprint. Two exceptions (funnel.community.identity): an identifier never joins two accounts of one account
  provider (two GitHub ids are two accounts, whatever they share; ``RECORD_PROVIDERS`` such as CSV rows and
  commit authors excepted), and an identifier that accounts with unrelated full names carry is a shared one
  (a team's mailbox under a name no role list knows).
- **Never evidence**: a shared company or free-mail domain; a role or no-reply address (``info@``, ``support@``,
  ``devrel@``, ``support-jp@``, ``noreply@github.com``); a one-word display name ("Alex", "Ken"); a placeholder
  ("Deleted User", "ghost") or a bot (``[bot]``, dependabot); a generic handle (coder2, dev01, taro).
- **Suggested** with a confidence and the evidence that produced it: the same full name in any script and order
  (funnel.community.names: kanji read every way a name table knows, kana, romaji), the same handle, a handle or
  mailbox spelled from the other's name, the same mailbox name at two domains. A handle that only spells the
  name adds little once the names agree (people of one name spell it alike); the same organisation or location
  only adds to other evidence. Conflicting names, two addresses at one company or two ids of one provider stop
  a suggestion. A name alone stays below 0.7: above it there is a handle or mailbox of the person's own.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from funnel.community.names import (
    FAMILY_NAMES,
    GIVEN_NAMES,
    NameKey,
    NameMatch,
    compact,
    compare_names,
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
    "fastmail.com", "hey.com", "tutanota.com", "zoho.com", "users.noreply.github.com", "yahoo.co.uk", "hotmail.co.uk",
    "rakuten.jp", "excite.co.jp", "infoseek.jp", "goo.jp", "livedoor.com", "dion.ne.jp", "plala.or.jp",
})
# Words of local parts that name a function, a list, a machine or nobody in particular, not a person.
ROLE_WORDS = frozenset({
    "info", "information", "support", "help", "helpdesk", "admin", "administrator", "admins", "contact", "contactus",
    "sales", "hello", "hi", "team", "devrel", "dev", "devs", "developers", "developer", "community", "marketing",
    "press", "pr", "media", "news", "newsletter", "office", "billing", "accounts", "accounting", "finance", "hr",
    "jobs", "careers", "recruit", "recruiting", "security", "abuse", "postmaster", "hostmaster", "webmaster", "root",
    "mail", "email", "service", "services", "customerservice", "inquiry", "inquiries", "enquiries", "enquiry",
    "feedback", "events", "event", "notifications", "notification", "notify", "alerts", "alert", "system", "ops",
    "it", "legal", "privacy", "partners", "partner", "staff", "all", "everyone", "general", "mailer", "daemon",
    "bounce", "bounces", "git", "github", "gitlab", "test", "tests", "testing", "example", "sample", "dummy", "user",
    "users", "owner", "owners", "oss", "opensource", "engineering", "tech", "us", "reply", "noreply", "donotreply",
    "nobody", "none", "null", "unknown", "anonymous", "guest", "foo", "bar", "bot", "bots", "robot", "ci", "build",
    "builds", "deploy", "release", "releases", "desk", "center", "centre", "group", "staffs", "members", "member",
    "relations", "rel", "advocacy", "evangelist", "program", "programs", "meetup", "meetups", "orders", "order",
    "shop", "store", "booking", "reservations", "reception", "secretary", "kouhou", "koho", "jimukyoku", "soumu",
    "somu", "saiyo", "saiyou", "toiawase", "otoiawase", "customer", "customers", "care", "success", "biz",
    "business", "corp", "corporate", "ir", "webinar", "seminar", "conference", "conf", "hackathon", "api", "docs",
})
# Words that only qualify a role (support-jp, info.tokyo, devrel-team).
ROLE_QUALIFIERS = frozenset({
    "jp", "japan", "tokyo", "osaka", "en", "ja", "global", "intl", "us", "eu", "apac", "asia", "team", "dept",
    "desk", "main", "official", "online", "web", "www", "the", "and", "of", "a", "no", "do", "not", "de",
})
NO_REPLY = re.compile(r"^(no-?reply|do-?not-?reply|donotreply|noreply[-+.].*|.*[-+.]noreply)$")
GITHUB_NOREPLY = re.compile(r"^(?:(\d+)\+)?([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\[bot\])?)@users\.noreply\.github\.com$")
GITHUB_LOGIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38})$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?\.[a-z0-9-]{2,63}$")
_ANGLE_ADDRESS = re.compile(r"<([^<>@\s]+@[^<>\s]+)>")
DOT_INSENSITIVE = frozenset({"gmail.com"})
SUBADDRESS_DOMAINS_DASH = frozenset({"yahoo.com", "ymail.com"})
# Domains no mailbox is behind (RFC 2606 / 6761 names used as placeholders).
PLACEHOLDER_DOMAINS = frozenset({"example.com", "example.org", "example.net", "localhost", "invalid", "test",
                                 "localdomain", "email.com", "domain.com", "test.com", "none.com", "noemail.com"})
PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,49}$")  # accounts.provider's CHECK
IDENTIFIER_KINDS = ("email", "domain", "phone", "click_id", "mlid", "key_fp")
# Handles too common to tell people apart on their own (also with digits: coder2, dev01).
GENERIC_HANDLES = frozenset({
    "admin", "user", "test", "dev", "developer", "coder", "hacker", "guest", "root", "me", "code", "codes", "devs",
    "engineer", "eng", "programmer", "prog", "geek", "nerd", "ninja", "master", "tech", "techie", "web", "webdev",
    "frontend", "backend", "fullstack", "data", "ai", "ml", "linux", "python", "java", "js", "go", "rust", "ruby",
    "php", "cpp", "taro", "hanako", "john", "jane", "alex", "anon", "someone", "hello", "info", "official", "jp",
    "japan", "tokyo", "osaka", "abc", "xyz", "aaa", "qwerty", "null", "none", "foo", "bar", "baz", "hoge", "fuga",
    "piyo", "noname", "nanashi", "sample", "demo", "tester",
})
# Providers whose ids name a source record (a CSV row, a commit author), not a person's account: several
# records of one provider can be one person. Every other provider's ids are accounts: two ids, two accounts.
RECORD_PROVIDERS = frozenset({"csv", "git", "import", "api", "form", "forms", "manual", "email", "webhook"})

CERTAIN = 1.0
MIN_SUGGESTION = 0.3
MAX_SUGGESTION = 0.95


@dataclass(frozen=True)
class Email:
    value: str  # normalised: the identity of the mailbox
    local: str
    domain: str
    personal: bool  # a person's own mailbox (not a role, a list or a no-reply machine)
    free_mail: bool
    github_user_id: str | None = None
    github_login: str | None = None


def clean_address(raw: str) -> str:
    """An address as written, without what surrounds it (a name and angle brackets, ``mailto:``, spaces), in
    lower case: deliverable, unlike ``normalize_email``'s value (which drops Gmail's dots and tags)."""
    return _address(raw)


def _address(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip()
    angle = _ANGLE_ADDRESS.search(text)  # "Yumi Murakami <ymurakami@example.jp>"
    if angle:
        text = angle.group(1)
    text = text.strip().strip("<>\"'()[],;").strip()
    if text[:7].casefold() == "mailto:":
        text = text[7:].split("?", 1)[0].strip()
    return text.casefold()


def is_role_local(local: str) -> bool:
    """A local part that names a function or nobody (info, support-jp, devrel.team, noreply, admin2)."""
    if NO_REPLY.match(local):
        return True
    words = [w for w in re.split(r"[^a-z]+", local) if w]
    if not words:
        return True  # digits only: 12345@...
    if not any(w in ROLE_WORDS for w in words):
        return "".join(words) in ROLE_WORDS
    return all(w in ROLE_WORDS or w in ROLE_QUALIFIERS for w in words)


def normalize_email(raw: str | None) -> Email | None:
    """The mailbox an address reaches, or None when it is not an address."""
    if not raw:
        return None
    text = _address(raw)
    if not EMAIL.match(text):
        return None
    local, domain = text.rsplit("@", 1)
    domain = domain.rstrip(".")
    if domain == "googlemail.com":
        domain = "gmail.com"
    noreply = GITHUB_NOREPLY.match(f"{local}@{domain}")
    if noreply:
        user_id, login = noreply.groups()
        person = not is_bot_name(login) and login not in ("ghost", "deleted-user")
        if user_id:  # the user id survives renames: it is the identity, the login is not
            return Email(f"{user_id}@users.noreply.github.com", user_id, domain, personal=person, free_mail=True,
                         github_user_id=user_id, github_login=login)
        return Email(f"{login}@users.noreply.github.com", login, domain, personal=person, free_mail=True,
                     github_login=login)
    base = local.split("+", 1)[0] if "+" in local[1:] else local  # RFC 5233 sub-addressing
    if domain in SUBADDRESS_DOMAINS_DASH and "-" in base[1:]:
        base = base.split("-", 1)[0]
    if domain in DOT_INSENSITIVE:
        base = base.replace(".", "")
    personal = not (is_role_local(base) or NO_REPLY.match(local) or is_bot_name(base)
                    or domain.startswith("noreply.") or ".noreply." in domain or domain in PLACEHOLDER_DOMAINS
                    or domain.rsplit(".", 1)[-1] in ("invalid", "localhost", "test"))
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


@lru_cache(maxsize=131072)
def _handle_core(text: str | None) -> str:
    return fold_romaji(compact(text))


def _stem(core: str) -> str:
    return re.sub(r"\d+$", "", core)


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

    @cached_property
    def handle_key(self) -> str:
        """The handle as compared: letters and digits, romaji folded ("Hfujita" = "hfujita", "ryo1185" != "ryo8486")."""
        return _handle_core(self.handle)

    @cached_property
    def handle_stem(self) -> str:
        """The handle without trailing digits, to compare with a name's spellings ("hanakoh87" -> "hanakoh")."""
        return _stem(self.handle_key)

    @cached_property
    def email_key(self) -> str:
        """A personal mailbox's name ("hina.fujita" -> "hinafujita"); not GitHub's commit address."""
        if not self.email or not self.email.personal or self.email.github_user_id:
            return ""
        return _handle_core(self.email.local)

    @cached_property
    def email_stem(self) -> str:
        return _stem(self.email_key)

    @cached_property
    def record_provider(self) -> bool:
        return self.provider in RECORD_PROVIDERS


def profile(provider: str, external_user_id: str, *, handle: str | None = None, email: str | None = None,
            display_name: str | None = None, org: str | None = None,
            attributes: dict[str, Any] | None = None) -> Profile:
    attributes = attributes or {}
    provider = provider.strip().casefold()
    normalized = normalize_email(email)
    login = unicodedata.normalize("NFKC", handle).strip().casefold() if handle else ""
    machine = (is_bot_name(handle) or is_bot_name(display_name) or is_placeholder(handle)
               or (is_placeholder(display_name) and not handle and not (normalized and normalized.personal))
               or (provider == "github" and login in ("ghost", "deleted-user", "web-flow"))
               or bool(normalized and normalized.github_login and is_bot_name(normalized.github_login)))
    keys: list[tuple[str, str]] = []
    if provider == "github" and not machine:
        keys.append(("email", github_noreply_email(external_user_id)))
        if GITHUB_LOGIN.match(login):  # the old login-only commit address, login@users.noreply.github.com
            keys.append(("email", f"{login}@users.noreply.github.com"))
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
    org_key = _org_key(org) or (normalized.domain if normalized and normalized.personal and not normalized.free_mail
                                else None)
    location = attributes.get("location")
    return Profile(provider=provider, external_user_id=external_user_id, handle=handle, email=normalized,
                   name=None if machine else name_key(display_name), org=org_key,
                   location=unicodedata.normalize("NFKC", location).casefold().strip() if isinstance(location, str)
                   and location.strip() else None,
                   machine=machine, identifiers=tuple(dict.fromkeys(keys)))


# What ``profile`` reads of a stored account's attributes ("org" for the organisation): the key of its cache.
PROFILE_ATTRIBUTES = ("org", "phone", "click_id", "mlid", "key_fp", "personal_domain", "location")


def stored_profile(provider: str, external_user_id: str, handle: str | None, email: str | None,
                   display_name: str | None, attributes: dict[str, Any]) -> Profile:
    """``profile`` of a stored account, remembered: a refresh of suggestions reads the accounts of every
    candidate developer, and the same candidates come back batch after batch (people of a common name)."""
    try:
        return _stored_profile(provider, external_user_id, handle, email, display_name,
                               tuple(attributes.get(k) for k in PROFILE_ATTRIBUTES))
    except TypeError:  # an attribute that is not hashable (a list, an object): not remembered
        return profile(provider, external_user_id, handle=handle, email=email, display_name=display_name,
                       org=attributes.get("org"), attributes=attributes)


@lru_cache(maxsize=32768, typed=True)
def _stored_profile(provider: str, external_user_id: str, handle: str | None, email: str | None,
                    display_name: str | None, values: tuple[Any, ...]) -> Profile:
    attributes = {k: v for k, v in zip(PROFILE_ATTRIBUTES, values, strict=True) if v is not None}
    return profile(provider, external_user_id, handle=handle, email=email, display_name=display_name,
                   org=attributes.get("org"), attributes=attributes)


def _org_key(org: str | None) -> str | None:
    if not org or not org.strip():
        return None
    domain = normalize_domain(org)
    return domain or compact(org) or unicodedata.normalize("NFKC", org).strip().casefold()


def _common_word(core: str) -> bool:
    """A handle that is only a common name or word: many people pick it (taro, sato, coder2, dev01)."""
    stem = _stem(core)
    if stem in GENERIC_HANDLES or len(re.sub(r"[^a-z]", "", core)) < 3:
        return True
    return stem in _common_name_readings()


_COMMON_READINGS: set[str] = set()


def _common_name_readings() -> set[str]:
    if not _COMMON_READINGS:
        _COMMON_READINGS.update(fold_romaji(r) for table in (FAMILY_NAMES, GIVEN_NAMES)
                                for readings in table.values() for r in readings)
    return _COMMON_READINGS


def distinctive_handle(core: str) -> bool:
    return len(core) >= 4 and not _common_word(core)


def match_keys(p: Profile) -> list[str]:
    """Keys stored in accounts.match_keys. ``n:``/``c:``/``h:`` keys block suggestions (two accounts are compared
    only when they share one); ``t:`` keys (a name's tokens in every reading) serve name search only."""
    if p.machine:
        return []
    keys: set[str] = set()
    if p.name:
        for part in p.name.parts:
            keys.update("t:" + r for r in part.readings if len(r) >= 3)
        if p.name.full:
            if len(p.name.parts) == 2:
                a, b = p.name.parts
                keys.update("n:" + " ".join(sorted((x, y))) for x in a.readings for y in b.readings)
            else:
                keys.add("n:" + " ".join(p.name.tokens))
            keys.update("h:" + spelling for spelling in handle_spellings(p.name))
        keys.update("c:" + spelled for spelled in p.name.spelled_together() if len(spelled) >= 5)
    for core in (p.handle_key, p.handle_stem, p.email_key, p.email_stem):
        if len(core) >= 3 and _stem(core) not in GENERIC_HANDLES:
            keys.add("h:" + core)
    return sorted(keys)


def blocking_keys(keys: list[str]) -> list[str]:
    return [k for k in keys if not k.startswith("t:")]


@dataclass(frozen=True)
class Evidence:
    kind: str
    detail: str
    weight: float

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "weight": self.weight}


NAME_WEIGHTS = {NameMatch.SAME: ("name", 0.6, "same full name"),
                NameMatch.SAME_READING: ("name_reading", 0.55, "same name in two scripts"),
                NameMatch.SAME_COMPACT: ("name_compact", 0.55, "same name"),
                NameMatch.PARTIAL: ("name_partial", 0.3, "names may be one")}


def _different_company_mailboxes(a: Profile, b: Profile) -> bool:
    """A company gives a person one address: two personal addresses at one company domain are two people."""
    return bool(a.email and b.email and a.email.personal and b.email.personal and not a.email.free_mail
                and not a.email.github_login and a.email.domain == b.email.domain and a.email.value != b.email.value)


def compare(a: Profile, b: Profile) -> list[Evidence] | None:
    """What two accounts of different developers have in common; None when they cannot be one person (or have
    nothing in common that names a person)."""
    if a.machine or b.machine:
        return None
    if a.provider == b.provider and a.external_user_id != b.external_user_id and not a.record_provider:
        return None  # two accounts of one provider are two people until a user says otherwise
    if _different_company_mailboxes(a, b):
        return None
    found: dict[str, Evidence] = {}

    def add(group: str, evidence: Evidence) -> None:
        if group not in found or found[group].weight < evidence.weight:
            found[group] = evidence

    if a.name and b.name:
        match, detail = compare_names(a.name, b.name)
        if match is NameMatch.CONFLICT:
            return None  # different names: a shared handle or mailbox name is a coincidence ("coder2")
        if match in NAME_WEIGHTS:
            kind, weight, what = NAME_WEIGHTS[match]
            add("name", Evidence(kind, f"{what}: {detail}", weight))
    # A handle or mailbox spelled from the name says little more once the names agree: people of one name spell
    # it alike (maokobayashi). The same handle with digits of its own (fujita_hina87) or a handle that is not the
    # name still counts.
    named = "name" in found and found["name"].weight >= 0.5
    spelled = [handle_spellings(p.name) for p in (a, b) if p.name]
    ha, hb = a.handle_key, b.handle_key
    if ha and ha == hb and distinctive_handle(ha):
        only_name = _spells_a_name(ha, spelled)
        add("account", Evidence("handle", f"same handle on {a.provider} and {b.provider}: {ha}"
                                + (" (the name spelled out)" if only_name else ""), 0.2 if only_name else 0.45))
    ea, eb = a.email_key, b.email_key
    if ea and ea == eb and len(ea) >= 4 and a.email and b.email and a.email.value != b.email.value:
        only_name = _spells_a_name(ea, spelled)
        add("account", Evidence("email_local_part", f"same e-mail name {ea} at {a.email.domain} and "
                                f"{b.email.domain}", 0.2 if only_name or not distinctive_handle(ea) else 0.5))
    for x, y in ((a, b), (b, a)):
        for core in dict.fromkeys((x.email_key, x.email_stem)):
            if core and distinctive_handle(core) and core in (y.handle_key, y.handle_stem):
                only_name = _spells_a_name(core, spelled)
                add("account", Evidence("email_matches_handle", f"e-mail name {core} is the {y.provider} handle",
                                        0.2 if only_name else 0.4))
    if not named:  # without a name in common, a handle or mailbox that spells the other's name is evidence
        for x, y in ((a, b), (b, a)):
            if y.name is not None:
                _spelled_evidence(x, y, y.name, handle_spellings(y.name), add)
    if not found:
        return None
    evidence = list(found.values())
    # what colleagues and neighbours share too: it adds to evidence about the person, at most 0.2 together
    if a.org and a.org == b.org:
        evidence.append(Evidence("organization", f"same organization: {a.org}", 0.15))
    if a.location and a.location == b.location:
        evidence.append(Evidence("location", f"same location: {a.location}", 0.05))
    return evidence


def _spells_a_name(core: str, spelled: list[dict[str, bool]]) -> bool:
    """The name spelled out, maybe with one digit (a company's second Ayaka Kimura is ayakakimura2): two people
    of one name spell it so. Two digits or more are a person's own choice (fujitahina87)."""
    stem = _stem(core)
    return len(core) - len(stem) <= 1 and any(stem in spellings for spellings in spelled)


def _spelled_evidence(x: Profile, y: Profile, name: NameKey, spellings: dict[str, bool],
                      add: Callable[[str, Evidence], None]) -> None:
    if not spellings:
        return
    for core in dict.fromkeys((x.handle_key, x.handle_stem)):
        if core in spellings:
            add("spelled", Evidence("handle_from_name", f"{x.provider} handle {x.handle} spells the {y.provider} "
                                    f"name {_shown(name)}", 0.5 if spellings[core] else 0.4))
    for core in dict.fromkeys((x.email_key, x.email_stem)):
        if core in spellings and x.email:
            add("spelled", Evidence("email_from_name", f"the e-mail name {x.email.local} spells the {y.provider} "
                                    f"name {_shown(name)}", 0.45 if spellings[core] else 0.35))
    if x.name and len(x.name.parts) == 1 and len(x.name.parts[0].primary) >= 5 and (
            x.name.parts[0].primary in spellings):
        add("spelled", Evidence("handle_from_name", f"{x.provider} name {x.name.parts[0].written} spells the "
                                f"{y.provider} name {_shown(name)}", 0.4))


def _shown(key: NameKey) -> str:
    return " ".join(p.written for p in key.parts)


def confidence(evidence: list[Evidence]) -> float:
    """Independent pieces of evidence combined (noisy-or), never certain: a person confirms a suggestion."""
    remaining = 1.0
    for item in evidence:
        remaining *= 1.0 - item.weight
    return round(min(MAX_SUGGESTION, 1.0 - remaining), 3)


def best_match(left: list[Profile], right: list[Profile]) -> tuple[float, list[Evidence]] | None:
    """The suggestion between two developers, from their accounts; None when any pair rules it out."""
    left_accounts = {(p.provider, p.external_user_id) for p in left if not p.record_provider}
    for p in right:
        if not p.record_provider and any(provider == p.provider and ext != p.external_user_id
                                         for provider, ext in left_accounts):
            return None
    best: tuple[float, list[Evidence]] | None = None
    for a in left:
        for b in right:
            found = compare(a, b)
            if found is None:
                if contradicts(a, b):
                    return None
                continue
            score = confidence(found)
            if best is None or score > best[0]:
                best = (score, found)
    if best is None or best[0] < MIN_SUGGESTION:
        return None
    return best


def contradicts(a: Profile, b: Profile) -> bool:
    """True when two accounts say they are different people (not merely unrelated)."""
    if a.machine or b.machine:
        return False
    if a.name and b.name and compare_names(a.name, b.name)[0] is NameMatch.CONFLICT:
        return True
    return _different_company_mailboxes(a, b)
