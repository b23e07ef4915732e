"""Tracking endpoints for e-mail recipients: open pixel, click redirect, unsubscribe; and the community area's
shortlink redirect (``/s/{key}``, funnel.community.shortlinks: no signed token, a (host, key) route).

Its own small function with no framework: cold start matters. The recipient never sees an
error: when the database is unreachable the pixel, the redirect and the unsubscribe page are
still served and the event is queued (EmailTrackingEventsQueue) for EmailTrackingEventsFunction to write later.
A tampered or unknown token gets a plain 404 page, never a redirect anywhere.

Observability: the events it records are counted (``funnel.email.events.record_event``) and flushed after each
record. It has no Powertools tracer: the X-Ray SDK costs ~300 ms of cold start, and Lambda's active tracing
already records every invocation's segment.
"""
from __future__ import annotations

import base64

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = {"cache-control": "no-store, no-cache, must-revalidate, max-age=0", "pragma": "no-cache",
            "expires": "0"}
NOT_FOUND = "<!doctype html><html><body><h1>Not found</h1><p>This link is not valid.</p></body></html>"
EXPIRED = "<!doctype html><html><body><h1>Link expired</h1><p>Ask the sender for the material again.</p></body></html>"
CONFIRM_PAGE = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>配信停止 / Unsubscribe</title></head><body>"
                "<h1>配信停止 / Unsubscribe</h1><p>今後のメール配信を停止しますか？ Stop receiving these e-mails?</p>"
                "<form method=\"post\"><button type=\"submit\">配信停止する / Unsubscribe</button></form>"
                "</body></html>")
DONE_PAGE = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>配信停止 / Unsubscribed</title></head><body>"
             "<h1>配信を停止しました / You are unsubscribed</h1></body></html>")

_key = None


def _tracking_key() -> bytes:
    global _key
    if _key is None:
        from funnel.email.tokens import tracking_key

        _key = tracking_key()
    return _key


def _html(status: int, body: str, headers: dict | None = None) -> dict:
    return {"statusCode": status,
            "headers": {"content-type": "text/html; charset=utf-8", **NO_CACHE, **(headers or {})}, "body": body}


def _record(token, kind: str, url: str | None, event: dict) -> None:
    http = event.get("requestContext", {}).get("http", {})
    request_id = event.get("requestContext", {}).get("requestId")
    tenant_id, message_id = token.tenant_id, token.message_id
    payload = {"tenant_id": tenant_id, "message_id": message_id, "type": kind, "url": url,
               "reminder_round": token.reminder_round,
               "user_agent": http.get("userAgent"), "ip": http.get("sourceIp"), "method": http.get("method", "GET"),
               "dedup_key": f"{kind}:{message_id}:{request_id}" if request_id else None}
    try:
        from funnel.email.events import record_event

        record_event(**{k: v for k, v in payload.items() if k not in ("tenant_id", "message_id", "type")},
                     tenant_id=tenant_id, message_id=message_id, event_type=kind)
    except Exception:  # the database is unreachable: queue the event, still answer the recipient
        from funnel.email.events_queue import enqueue

        enqueue(payload)
    finally:
        # record_event counted the event (EmailOpensRecorded, ...): write it. The observability module comes
        # with the event's database modules, never at this function's import (its cold start stays small).
        from funnel.observability import flush_metrics

        flush_metrics()


UNAVAILABLE = ("<!doctype html><html><head><meta charset=\"utf-8\"></head><body>"
               "<h1>しばらくしてからもう一度お試しください</h1><p>Please try again in a moment.</p></body></html>")


def handler(event, context):
    try:
        return _route(event)
    except Exception:  # e.g. the signing key cannot be read: the recipient still gets a page, never a 500
        import logging

        logging.getLogger("funnel.tracking").exception("tracking request failed")
        if event.get("rawPath", "").startswith("/t/o/"):
            return _gif()
        return _html(503, UNAVAILABLE, {"retry-after": "30"})


def _gif() -> dict:
    return {"statusCode": 200, "headers": {"content-type": "image/gif", **NO_CACHE},
            "body": base64.b64encode(GIF).decode(), "isBase64Encoded": True}


def _shortlink(event, method: str) -> dict:
    """``/s/{key}``: the community area's shortlinks (funnel.community.shortlinks.follow decides; imported on the
    first shortlink request only, so e-mail tracking's cold start does not load the community area)."""
    from funnel.community.shortlinks import Answer, Visit, anon_cookie, follow

    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    cookies = dict(c.strip().split("=", 1) for c in [*(event.get("cookies") or []),
                                                     *headers.get("cookie", "").split(";")] if "=" in c)
    try:
        answer: Answer = follow(Visit(host=headers.get("host", ""), key=event["rawPath"][len("/s/"):],
                                      method=method, headers=headers,
                                      query=event.get("queryStringParameters") or {}, cookies=cookies,
                                      request_id=event.get("requestContext", {}).get("requestId")))
    finally:  # follow counted the click or the machine request (ShortlinkClicks, ...): write it
        from funnel.observability import flush_metrics

        flush_metrics()
    if answer.location is None:
        return _html(404, NOT_FOUND)
    result = {"statusCode": answer.status, "headers": {"location": answer.location, **NO_CACHE}, "body": ""}
    if answer.set_anon_id:
        result["cookies"] = [anon_cookie(answer.set_anon_id)]
    return result


def _route(event):
    from funnel.email.tokens import InvalidToken, verify

    path = event.get("rawPath", "")
    method = event.get("requestContext", {}).get("http", {}).get("method", "GET")
    if path.startswith("/s/"):
        return _shortlink(event, method)
    try:
        if path.startswith("/t/o/") and path.endswith(".gif"):
            token = verify(_tracking_key(), path[len("/t/o/"):-len(".gif")], "o")
            _record(token, "open", None, event)
            return _gif()
        if path.startswith("/t/c/"):
            token = verify(_tracking_key(), path[len("/t/c/"):], "c")
            url = token.url
            if not url or not url.startswith(("https://", "http://")):
                raise InvalidToken("no target")
            _record(token, "click", url, event)
            return {"statusCode": 302, "headers": {"location": url, **NO_CACHE}, "body": ""}
        if path.startswith("/t/a/"):  # attachment download: signed, expiring, tracked
            import time

            from funnel.email.campaigns import attachment_download

            token = verify(_tracking_key(), path[len("/t/a/"):], "a")
            attachment_id, _, expires = (token.url or "").partition(":")
            if not expires.isdigit() or int(expires) < time.time():
                return _html(410, EXPIRED)
            found = attachment_download(token.tenant_id, token.message_id, attachment_id)
            if found is None:
                raise InvalidToken("unknown attachment")
            _record(token, "click", f"attachment:{found[0]}", event)
            return {"statusCode": 302, "headers": {"location": found[1], **NO_CACHE}, "body": ""}
        if path.startswith("/u/"):
            token = verify(_tracking_key(), path[len("/u/"):], "u")
            if method == "POST":  # RFC 8058 one-click, or the confirmation form
                _record(token, "unsubscribe", None, event)
                return _html(200, DONE_PAGE)
            return _html(200, CONFIRM_PAGE)
    except InvalidToken:
        pass
    return _html(404, NOT_FOUND)
