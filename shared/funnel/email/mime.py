"""One campaign message as correct MIME: multipart/alternative (text + HTML), UTF-8 headers for
Japanese subjects and names, RFC 8058 one-click unsubscribe, sender identity and an opt-out line
(Japan's Act on Specified Electronic Mail), tracked links and the open pixel."""
from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid

from funnel.email import tokens
from funnel.platform.prompts import PLACEHOLDER

ATTACHMENT_LINK_DAYS = 30
URL_PATTERN = re.compile(r"https?://[^\s<>\"')]+")


def personalise(text: str, recipient: dict) -> str:
    values = {"name": recipient.get("name") or "", "company_name": recipient.get("company") or "",
              "email": recipient["email"]}
    return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), text)


def _attachment_links(campaign: dict, tenant_id: str, message_id: str, key: bytes, base: str,
                      reminder_round: int) -> list[tuple[str, str]]:
    """Tracked download links that stop working after ATTACHMENT_LINK_DAYS (the expiry is signed)."""
    expires = int(time.time()) + ATTACHMENT_LINK_DAYS * 86400
    links = []
    for attachment in campaign.get("attachment_urls") or []:
        token = tokens.sign(key, "a", tenant_id, message_id, f"{attachment['id']}:{expires}", reminder_round)
        links.append((attachment["filename"], f"{base}/t/a/{token}"))
    return links


def build(campaign: dict, recipient: dict, tenant_id: str, key: bytes, public_base_url: str,
          reminder_round: int = 0) -> MIMEMultipart:
    """The message of ``recipient`` (its ``id`` is the email_messages row); ``reminder_round`` > 0 for a
    reminder, so its opens and clicks count for that round."""
    message_id = str(recipient["id"])
    base = public_base_url.rstrip("/")
    unsubscribe = f"{base}/u/{tokens.sign(key, 'u', tenant_id, message_id, None, reminder_round)}"
    text = personalise(campaign["body"], recipient)

    def tracked(url: str) -> str:
        return f"{base}/t/c/{tokens.sign(key, 'c', tenant_id, message_id, url, reminder_round)}"

    footer_text = (f"\n\n--\n{campaign['from_name']} <{campaign['from_address']}>\n{campaign['sender_identity']}\n"
                   f"配信停止 / Unsubscribe: {unsubscribe}\n")
    parts, last = [], 0
    for match in URL_PATTERN.finditer(text):
        parts.append(html.escape(text[last:match.start()]))
        url = match.group(0)
        parts.append(f'<a href="{html.escape(tracked(url))}">{html.escape(url)}</a>')
        last = match.end()
    parts.append(html.escape(text[last:]))
    body_html = "".join(parts).replace("\n", "<br>\n")
    downloads = _attachment_links(campaign, tenant_id, message_id, key, base, reminder_round)
    if downloads:
        text += "\n\n添付資料 / Attachments:\n" + "\n".join(f"{name}: {url}" for name, url in downloads)
        body_html += "<p>添付資料 / Attachments:<br>" + "<br>".join(
            f'<a href="{html.escape(url)}">{html.escape(name)}</a>' for name, url in downloads) + "</p>"
    pixel = f"{base}/t/o/{tokens.sign(key, 'o', tenant_id, message_id, None, reminder_round)}.gif"
    html_document = (
        f"<!doctype html><html><body>{body_html}"
        f"<hr><p style=\"font-size:12px;color:#666\">{html.escape(campaign['from_name'])} "
        f"&lt;{html.escape(campaign['from_address'])}&gt;<br>{html.escape(campaign['sender_identity'])}<br>"
        f"<a href=\"{html.escape(unsubscribe)}\">配信停止 / Unsubscribe</a></p>"
        f"<img src=\"{html.escape(pixel)}\" width=\"1\" height=\"1\" alt=\"\"></body></html>")

    # email.mime (compat32) builds a message several times faster than EmailMessage's default policy,
    # which matters when a campaign renders 10,000 of them.
    message = MIMEMultipart("alternative")
    message["From"] = formataddr((campaign["from_name"], campaign["from_address"]), charset="utf-8")
    message["To"] = formataddr((recipient.get("name") or "", recipient["email"]), charset="utf-8")
    # compat32 takes a Header and encodes it when the message is flattened; typeshed types MIMEMultipart's header
    # values as str only.
    message["Subject"] = Header(personalise(campaign["subject"], recipient), "utf-8")  # type: ignore[assignment]
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=campaign["from_address"].partition("@")[2] or None)
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Funnel-Message"] = message_id
    message.attach(MIMEText(text + footer_text, "plain", "utf-8"))
    message.attach(MIMEText(html_document, "html", "utf-8"))
    return message
