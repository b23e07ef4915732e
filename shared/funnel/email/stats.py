"""A campaign's figures (``GET /v1/email-campaigns/{id}/stats``): sent, delivered, opened, clicked, bounced,
complained, unsubscribed (unique recipients and total events), per link and per reminder round. Machine opens
and clicks are counted apart (``machine_events_excluded``), never in the open/click figures."""
from __future__ import annotations

from typing import Any

from funnel.db import Connection, Row
from funnel.email import campaigns, store_events

NOT_SENT = ("queued", "suppressed", "cancelled", "failed")  # statuses of messages that never went out


def _counts(rows: list[Row], event_type: str) -> dict[str, int]:
    row = next((r for r in rows if r["type"] == event_type), None)
    return {"unique": row["unique_messages"], "total": row["total"]} if row else {"unique": 0, "total": 0}


def rounds(round_sent: dict[int, int], round_events: list[Row]) -> list[dict[str, Any]]:
    """Per round (0: the first mail), in order: how many it went out to, their opens, clicks and unsubscribes.
    An event counts for the round of the mail it came from."""
    found = []
    for number in sorted(set(round_sent) | {r["reminder_round"] for r in round_events}):
        rows = [r for r in round_events if r["reminder_round"] == number]
        found.append({"round": number, "sent": round_sent.get(number, 0), "opened": _counts(rows, "open"),
                      "clicked": _counts(rows, "click"), "unsubscribed": _counts(rows, "unsubscribe")["unique"]})
    return found


def stats(conn: Connection, campaign_id: str) -> dict[str, Any]:
    campaigns.get_campaign(conn, campaign_id)
    messages = store_events.message_counts_by_status(conn, campaign_id)
    events = store_events.human_event_counts(conn, campaign_id)
    links = store_events.human_clicks_per_link(conn, campaign_id)
    per_round = rounds(store_events.sent_per_round(conn, campaign_id),
                       store_events.human_event_counts_per_round(conn, campaign_id))
    return {"messages": messages, "sent": sum(v for k, v in messages.items() if k not in NOT_SENT),
            "reminders_sent": sum(r["sent"] for r in per_round if r["round"]),
            "delivered": _counts(events, "delivery")["unique"], "opened": _counts(events, "open"),
            "clicked": _counts(events, "click"), "bounced": _counts(events, "bounce")["unique"],
            "complained": _counts(events, "complaint")["unique"],
            "unsubscribed": _counts(events, "unsubscribe")["unique"],
            "events": {e["type"]: {"total": e["total"], "unique": e["unique_messages"]} for e in events},
            "machine_events_excluded": store_events.machine_event_count(conn, campaign_id),
            "links": [{"url": r["url"], "unique": r["unique_messages"], "total": r["total"]} for r in links],
            "rounds": per_round}
