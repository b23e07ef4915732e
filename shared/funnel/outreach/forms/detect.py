"""Page-level decisions: refusal notices, CAPTCHAs, contact links, which form is the
contact form, which button confirms or submits, and what the page after a click says.

Everything here works on the plain data the snapshot script returns, so it can be
unit-tested without a browser.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from funnel.outreach.forms.fields import HONEYPOT, TEXTAREA, Control
from funnel.outreach.forms.text import normalize

# --------------------------------------------------------------------------
# refusal of sales solicitations
# --------------------------------------------------------------------------
# 営業 also means "business hours/days" (営業時間, 翌営業日) and "sales department"; those are not refusals.
_SALES = (r"(?:営業(?!日|時間|時|所|部|担当|中|カレンダー|拠点|エリア|品目|年数)"
          r"|勧誘|セールス|売り?込み|宣伝|広告(?!代理)"
          r"|営利目的|商用目的|ご提案・ご案内|サービスのご案内|売り込み)")
_REFUSE = (r"(?:お断り|断り|ご遠慮|遠慮|禁止|お控え|控えて|受け付けて(?:おりません|いません)"
           r"|受付(?:して)?(?:おりません|いません)"
           r"|お受けして(?:おりません|いません)|お受けできません|(?:返信|返答|回答|対応|お返事)(?:は|を)?(?:いたし|致し|し)?(?:かね|ません|できません)"
           r"|お答えでき|ご利用(?:は|を)?(?:ご遠慮|お控え|できません|いただけません))")
REFUSAL_PATTERNS = (
    re.compile(_SALES + r"[^。\n]{0,40}?" + _REFUSE),
    re.compile(r"(?:お断り|ご遠慮)[^。\n]{0,6}[:：]?\s*" + _SALES),
    re.compile(r"営業(?:目的|・勧誘|メール|電話)[^。\n]{0,15}(?:では|で)(?:は)?(?:ない|ありません|ございません)"),
    re.compile(r"no (?:sales |marketing )?solicitations?"
               r"|solicitations? (?:are|is|will) not (?:be )?(?:accepted|welcome|answered)"
               r"|(?:do|will) not (?:accept|respond to|reply to) (?:any )?(?:sales|marketing|unsolicited|solicitation)"
               r"|no (?:sales|marketing) (?:inquiries|enquiries|pitches|calls|e-?mails|messages)"
               r"|please do not use this form (?:for|to) (?:sales|marketing|solicit)"
               r"|not (?:for|intended for) (?:sales|marketing|solicitation)"),
)


def find_refusal(text: str) -> str | None:
    """The line that refuses sales inquiries, if the page has one."""
    for line in (text or "").splitlines():
        normalized = normalize(line)
        for pattern in REFUSAL_PATTERNS:
            match = pattern.search(normalized)
            if match:
                return normalized[max(0, match.start() - 40):match.end() + 40]
    return None


# --------------------------------------------------------------------------
# CAPTCHA
# --------------------------------------------------------------------------
_CAPTCHA_URL = re.compile(r"recaptcha|hcaptcha|turnstile|challenges\.cloudflare\.com|captcha|geetest|arkoselabs"
                          r"|funcaptcha", re.I)
_CAPTCHA_TEXT = re.compile(r"私はロボットではありません|i'?m not a robot|画像認証|画像に表示されている(文字|数字)")


def find_captcha(snapshot: dict[str, Any], form_index: int | None) -> str | None:
    """What reveals a CAPTCHA guarding this page's chosen form, or None.

    Widget scripts, iframes and inline grecaptcha/turnstile code count page-wide
    (invisible reCAPTCHA v3 and Turnstile protect every form); a widget element
    counts unless it sits inside a different form (a newsletter box's CAPTCHA
    does not guard the contact form)."""
    for src in snapshot.get("scripts", []):
        if _CAPTCHA_URL.search(src or ""):
            return f"script {src}"
    for src in snapshot.get("iframes", []):
        if _CAPTCHA_URL.search(src or ""):
            return f"iframe {src}"
    if snapshot.get("inline_captcha"):
        return "inline CAPTCHA script"
    for node in snapshot.get("captcha_nodes", []):
        if node.get("form") in (None, -1) or node.get("form") == form_index:
            return f"element {node.get('what', '')}".strip()
    if form_index is not None:
        for form in snapshot.get("forms", []):
            if form["index"] == form_index and _CAPTCHA_TEXT.search(normalize(form.get("text", ""))):
                return "CAPTCHA instructions in the form"
    return None


# --------------------------------------------------------------------------
# contact page links
# --------------------------------------------------------------------------
_CONTACT_TEXT = re.compile(r"お?問い?合わ?せ|問合せ|contact|inquiry|enquiry|ご相談|toiawase|get in touch")
_WEAK_CONTACT_TEXT = re.compile(r"資料請求|お?見積|reach us|相談")
_CONTACT_PATH = re.compile(r"contact|inquiry|enquiry|toiawase|otoiawase|inq|soudan|sodan|mailform|form")
_NOT_CONTACT = re.compile(r"採用|recruit|entry|求人|career|job|faq|よくある|privacy|プライバシー|login|ログイン"
                          r"|会員登録"
                          r"|sign ?up|newsletter|メルマガ|ダウンロード|download|\.pdf$")
COMMON_CONTACT_PATHS = ("/contact/", "/inquiry/", "/otoiawase/", "/toiawase/", "/contact.html", "/form/",
                        "/contact-us/", "/contactus/")


def _same_site(a: str, b: str) -> bool:
    host_a, host_b = (urlsplit(u).hostname or "" for u in (a, b))
    strip = lambda h: h[4:] if h.startswith("www.") else h  # noqa: E731 - tiny normaliser
    return (strip(host_a) == strip(host_b) or host_a.endswith("." + strip(host_b))
            or host_b.endswith("." + strip(host_a)))


def _without_fragment(url: str) -> str:
    return url.split("#", 1)[0].rstrip("/")


def contact_links(links: list[dict[str, str]], current_url: str, visited: set[str]) -> list[str]:
    """Links that probably lead to the contact page, best first."""
    scored: dict[str, float] = {}
    for link in links:
        href = link.get("href") or ""
        if not href.startswith(("http://", "https://")):
            continue  # mailto:, tel:, javascript:
        target = _without_fragment(href)
        if target == _without_fragment(current_url) or target in visited:
            continue
        text = normalize(link.get("text", ""))
        path = normalize(urlsplit(href).path + "?" + urlsplit(href).query)
        score = 0.0
        if _CONTACT_TEXT.search(text):
            score += 10
        elif _WEAK_CONTACT_TEXT.search(text):
            score += 4
        if _CONTACT_PATH.search(path):
            score += 5
        if _NOT_CONTACT.search(text) or _NOT_CONTACT.search(path):
            score -= 8
        score += 2 if _same_site(href, current_url) else -3
        if score >= 5:
            scored[target] = max(scored.get(target, 0.0), score)
    return sorted(scored, key=lambda url: -scored[url])


# --------------------------------------------------------------------------
# choosing the contact form
# --------------------------------------------------------------------------
_FORM_CONTACT_WORDS = re.compile(r"お?問い?合わ?せ|問合せ|contact|inquiry|enquiry|ご相談|mailform|wpcf7|mw_wp_form")
_FORM_OTHER_PURPOSE = re.compile(r"newsletter|メルマガ|メールマガジン|subscribe|購読|配信|search|検索|login|ログイン"
                                 r"|sign ?in|会員登録|register")
_COMMENT_FORM = re.compile(r"comment-?form|commentform|wp-comments-post|respond")


def is_other_purpose(form: dict[str, Any]) -> bool:
    """A login, search or newsletter box: never a step of the contact form."""
    return bool(form.get("has_password") or form.get("is_search")
                or _FORM_OTHER_PURPOSE.search(normalize(form.get("attrs", ""))))


def score_form(form: dict[str, Any], controls: list[Control]) -> float | None:
    """How much this looks like the contact form; None when it is not one at all.

    A contact form must have somewhere to put the message: a newsletter box with
    name and e-mail is not one, whatever its labels say."""
    attrs = normalize(form.get("attrs", ""))
    if form.get("has_password") or form.get("is_search") or _COMMENT_FORM.search(attrs):
        return None
    live = [c for c in controls if c.semantic != HONEYPOT]
    semantics = {c.semantic for c in live}
    if "message" not in semantics:
        # The first step of a wizard whose message field is rendered later: contact details and a "next" button.
        # It still must show a message field before anything is sent (the engine checks at the final click).
        advances = any(_NEXT_STEP.search(normalize(b.get("text", ""))) and b.get("visible")
                       for b in form.get("buttons", []))
        if advances and "email" in semantics and not _FORM_OTHER_PURPOSE.search(attrs):
            return 5.0 + min(len(live), 10) * 0.1
        return None
    score = 10.0
    score += 3 if "email" in semantics else 0
    score += 1 if semantics & {"full_name", "last_name"} else 0
    score += 1 if "company" in semantics else 0
    score += 1 if any(c.kind == TEXTAREA and c.semantic == "message" for c in live) else 0
    score += min(len(live), 10) * 0.3
    if _FORM_CONTACT_WORDS.search(attrs):
        score += 2
    if _FORM_OTHER_PURPOSE.search(attrs):
        score -= 6
    return score


# --------------------------------------------------------------------------
# buttons
# --------------------------------------------------------------------------
_BACK = re.compile(r"戻る|前へ|前に戻|修正|訂正|書き直|やり直|back|previous|\bprev\b|edit|reset|リセット|クリア|clear"
                   r"|キャンセル|cancel"
                   r"|閉じる|close|検索|search")
_CONFIRM = re.compile(r"確認|次へ|進む|next|continue|続ける|confirm|review|preview|check")
_NEXT_STEP = re.compile(r"次へ|進む|next|continue|続ける")
_FINAL = re.compile(r"送信|submit|send|申し?込|登録|この内容で|問い?合わ?せる|完了|\bok\b|\bgo\b")
_ENDS_WITH_SEND = re.compile(r"(送信(する|します)?|send|submit|申し?込(む|みする)?)[\s!！>＞→»]*$")

CONFIRM_BUTTON, FINAL_BUTTON = "confirm", "final"


def button_kind(button: dict[str, Any]) -> str | None:
    """"confirm" (goes to a confirm screen), "final" (submits) or None (back/reset/unrelated)."""
    text = normalize(button.get("text", ""))
    if button.get("type") in ("reset",) or _BACK.search(text):
        return None
    if _CONFIRM.search(text) and not _ENDS_WITH_SEND.search(text):
        return CONFIRM_BUTTON
    if _FINAL.search(text) or (not text and button.get("type") in ("submit", "image")):
        return FINAL_BUTTON
    if button.get("type") in ("submit", "image") and button.get("tag") != "a":
        return FINAL_BUTTON
    return None


def primary_button(buttons: list[dict[str, Any]]) -> tuple[dict[str, Any], str] | None:
    """The button that moves the input form forward: a confirm button when there is one."""
    usable = [b for b in buttons if b.get("visible") and not b.get("disabled")] or \
             [b for b in buttons if not b.get("disabled")]
    ranked = []
    for button in usable:
        kind = button_kind(button)
        if kind is None:
            continue
        score = (2 if kind == CONFIRM_BUTTON else 1) * 10 + (2 if button.get("type") in ("submit", "image") else 0)
        ranked.append((score, button, kind))
    if not ranked:
        return None
    _, button, kind = max(ranked, key=lambda item: item[0])
    return button, kind


_SEND_WORDS = re.compile(r"送信|send|submit")


def final_button(forms: list[dict[str, Any]]) -> dict[str, Any] | None:
    """On a confirm screen: the button that sends (送信する), never 戻る, and never the
    button of a newsletter or search box elsewhere on the page."""
    best: tuple[int, dict[str, Any]] | None = None
    for form in forms:
        if (form.get("has_password") or form.get("is_search")
                or _FORM_OTHER_PURPOSE.search(normalize(form.get("attrs", "")))):
            continue
        for button in form.get("buttons", []):
            if not button.get("visible") or button.get("disabled") or button_kind(button) != FINAL_BUTTON:
                continue
            score = 2 if _SEND_WORDS.search(normalize(button.get("text", ""))) else 1
            if best is None or score > best[0]:
                best = (score, button)
    return best[1] if best else None


# --------------------------------------------------------------------------
# what the page says after a click
# --------------------------------------------------------------------------
_SUCCESS_URL = re.compile(r"thank|complete|finish|done|success|(?<![a-z])sent|kanryo|完了|submitted|arigato")
_SUCCESS_TEXT = re.compile(
    r"ありがとうございま(す|した)|送信(が)?完了|送信(いた)?しました|送信されました|受け?付け(いた)?しました|受付(が)?完了"
    r"|受け付けました|承りました|お問い合わせを受け付け|thank you|thanks for|has been (sent|submitted|received)"
    r"|successfully (sent|submitted)|message (was|has been) sent|we('ll| will) (get back|be in touch|contact|reply)"
    r"|received your (message|inquiry|enquiry)")
_ERROR_TEXT = re.compile(
    r"必須(項目)?です|は必須|入力してください|入力して下さい|入力されていません|未入力|正しく(ありません|入力|な)|形式が(正しく|不正|違)"
    r"|誤りがあります|エラー|不正な|選択してください|選択して下さい|チェックして(ください|下さい)|一致しません|有効期限"
    r"|送信(に|でき)(失敗|ませんでした)|問題があります|が必要です|必要があります|同意(して|されて|いただけ)|不備"
    r"|できませんでした|失敗しました|もう一度お試し|受け付けられません|受付できません"
    r"|is required|are required|required field|invalid|please (enter|fill|select"
    r"|check|complete|correct|provide|agree|accept|try again)|error|failed|problem with your submission|session expired"
    r"|could not be sent|you must|must (agree|accept|be)|not (valid|accepted)|unable to (send|submit|process)")

SUCCESS, ERROR, UNKNOWN_OUTCOME = "success", "error", "unknown"


@dataclass
class Outcome:
    kind: str
    message: str = ""


def classify_json_reply(reply: Any) -> Outcome | None:
    """Contact Form 7 / HubSpot / generic JSON answers to an AJAX submission."""
    if not isinstance(reply, dict):
        return None
    status = str(reply.get("status", "")).lower()
    text = str(reply.get("message") or reply.get("inlineMessage") or "")
    errors = reply.get("errors") or reply.get("invalid_fields") or []
    error_texts = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors] \
        if isinstance(errors, list) else [str(errors)]
    if status in ("validation_failed", "mail_failed", "error", "failed", "spam", "aborted", "invalid") \
            or reply.get("ok") is False or reply.get("success") is False or error_texts:
        return Outcome(ERROR, "; ".join([text] * bool(text) + error_texts[:5]) or status)
    if status in ("mail_sent", "sent", "success", "ok", "completed", "complete") or reply.get("ok") is True \
            or reply.get("success") is True or "inlineMessage" in reply or "redirectUri" in reply:
        return Outcome(SUCCESS, text or status or "accepted")
    return None


def classify_marks(before: dict[str, Any], after: dict[str, Any]) -> Outcome | None:
    """Structural signs of a rejected submission that are new on the page: fields the site marked
    ``aria-invalid`` (with the message they point to) and error summaries or alerts that do not thank."""
    old_invalid = {mark.get("name", "") for mark in before.get("invalid", [])}
    invalid = [mark for mark in after.get("invalid", []) if mark.get("name", "") not in old_invalid]
    old_alerts = set(before.get("alerts", []))
    alerts = [text for text in after.get("alerts", []) if text not in old_alerts
              and not _SUCCESS_TEXT.search(normalize(text))]
    if not invalid and not alerts:
        return None
    messages = alerts[:3] + [f"{mark.get('name') or 'a field'}: {mark.get('message') or 'marked invalid'}"
                             for mark in invalid[:3]]
    return Outcome(ERROR, " / ".join(messages))


def rejection(status: int, reply: Any, body: str) -> Outcome:
    """The site refused the submission request itself (HTTP 4xx/5xx): its own words when it gave any."""
    said = classify_json_reply(reply)
    text = said.message if said and said.message else ""
    if not text and isinstance(reply, dict):
        text = str(reply.get("message") or reply.get("error") or reply.get("errors") or "")
    if not text:
        title = re.search(r"<title[^>]*>(.*?)</title>", body or "", re.S | re.I)
        visible = re.sub(r"<(script|style|title)[^>]*>.*?</\1>", " ", body or "", flags=re.S | re.I)
        plain = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", visible)).strip()
        heading = title.group(1).strip() if title and title.group(1).strip() not in plain else ""
        text = " ".join(part for part in (heading, plain[:200]) if part)
    return Outcome(ERROR, f"HTTP {status}" + (f": {text[:300]}" if text else ""))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if 0 < len(line.strip()) <= 300]


def new_lines(before_text: str, after_text: str) -> list[str]:
    """Lines of ``after_text`` that ``before_text`` did not have."""
    seen = set(_lines(before_text))
    return [line for line in _lines(after_text) if line not in seen]


def classify_page(before_text: str, before_url: str, after_text: str, after_url: str,
                  fields_still_editable: bool) -> Outcome:
    """Success, validation error or neither, judged on what is new on the page.

    Only lines that were not on the input page count: the input page itself says
    入力してください and 必須 next to every label."""
    fresh = new_lines(before_text, after_text)
    errors = [line for line in fresh if _ERROR_TEXT.search(normalize(line))]
    successes = [line for line in fresh if _SUCCESS_TEXT.search(normalize(line))]
    after_path = normalize(urlsplit(after_url).path + "?" + urlsplit(after_url).query)
    moved = _without_fragment(after_url) != _without_fragment(before_url)
    if moved and _SUCCESS_URL.search(after_path):
        successes.append(f"reached {urlsplit(after_url).path}")
    if errors and (not successes or fields_still_editable):
        return Outcome(ERROR, " / ".join(errors[:5]))
    if successes:
        return Outcome(SUCCESS, successes[0])
    return Outcome(UNKNOWN_OUTCOME)
