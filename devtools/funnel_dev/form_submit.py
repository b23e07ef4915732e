"""`funnel form-submit URL --sender SENDER.json --message-file FILE [--subject TEXT] [--json]`

Prints one JSON object (with --json) holding at least status, fields, confirm_step
and final_url. The exit code is 0 whatever the status; only usage errors (unreadable
sender or message file) exit 2, and even then --json prints a `failed` object.

The CLI is an operator tool: the host:port of the URL typed on the command line is
added to the SSRF allow-list (with settings ``ssrf_allow_hosts``); every other
private address stays refused, including redirects and links to other local hosts.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

HELP = "find a company's contact form and submit a message into it"

USAGE_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("url", help="company site or contact page URL")
    parser.add_argument("--sender", required=True, metavar="SENDER.json", help="sender profile (JSON object)")
    parser.add_argument("--message-file", required=True, metavar="FILE", help="message text (UTF-8)")
    parser.add_argument("--subject", help="subject for forms that have one (default: the sender's subject)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--dry-run", action="store_true",
                        help="review mode: fill the form, stop on the confirm screen or before the final submit")
    parser.add_argument("--screenshot-dir", metavar="DIR", help="store screenshots of the filled form and the result")
    parser.add_argument("--chromium", metavar="PATH",
                        help="Chromium executable (default: Playwright's or /usr/bin/chromium)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for a page or an answer")


def _origin_allowance(url: str) -> list[str]:
    parts = urlsplit(url)
    if not parts.hostname:
        return []
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return []
    return [f"{parts.hostname}:{port}"]


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    print(f"status: {result['status']}  ({result.get('message', '')})")
    print(f"final url: {result.get('final_url', '')}  confirm step: {result.get('confirm_step', False)}")
    for item in result.get("fields", []):
        print(f"  {item['name']:<28} {item['semantic']:<16} {item['value'][:60]!r}")
    for path in result.get("screenshots", []):
        print(f"  screenshot: {path}")


def _failure(message: str, url: str) -> dict:
    from funnel.outreach.forms.model import FormResult, Status

    return FormResult(status=Status.FAILED, message=message, final_url=url).to_dict()


def run(args: argparse.Namespace, command: str) -> int:
    from funnel.outreach.forms.model import SenderProfile

    try:
        sender_data = json.loads(Path(args.sender).read_text(encoding="utf-8"))
        if not isinstance(sender_data, dict):
            raise ValueError("the sender file must hold a JSON object")
        message = Path(args.message_file).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        print(f"funnel {command}: {exc}", file=sys.stderr)
        if args.json:
            _emit(_failure(f"usage error: {exc}", args.url), True)
        return USAGE_ERROR

    try:
        from funnel.outreach.forms.engine import FormEngine
        from funnel.settings import get_settings

        allow_hosts = [*get_settings().ssrf_allow_hosts, *_origin_allowance(args.url)]
        with FormEngine(allow_hosts=allow_hosts, screenshot_dir=args.screenshot_dir,
                        chromium_path=args.chromium, timeout=args.timeout) as engine:
            result = engine.submit(args.url, SenderProfile.from_dict(sender_data), message,
                                   subject=args.subject, dry_run=args.dry_run).to_dict()
    except Exception as exc:  # e.g. Chromium missing: still one JSON object on stdout
        result = _failure(f"{type(exc).__name__}: {exc}", args.url)
    _emit(result, args.json)
    return 0
