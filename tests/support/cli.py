"""What an operator command printed, without the log records and metrics other code wrote to the same stdout.

Functions running in the test process at the same time (the local runtime's scheduler fires the stats rollup on
its schedule, in a thread) write Powertools' JSON log records and EMF metric lines to the same ``sys.stdout``
that ``capsys`` captures, so a command's output may have such lines before, between or after its own."""
from __future__ import annotations

import json
from typing import Any


def _structured_log(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and ("_aws" in record or {"level", "location", "message"} <= record.keys())


def printed_lines(out: str) -> list[str]:
    """The command's own non-blank lines, in order."""
    return [line for line in out.splitlines() if line.strip() and not _structured_log(line)]


def printed_json(out: str) -> dict[str, Any]:
    """The command's answer: the JSON document it printed (indented over several lines, or the last one-line
    object of several)."""
    lines = printed_lines(out)
    try:
        return json.loads("\n".join(lines))
    except ValueError:
        answers = [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]
        assert answers, f"no JSON answer in {out!r}"
        return answers[-1]
