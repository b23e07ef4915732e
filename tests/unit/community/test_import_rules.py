"""Rules of the activity CSV import that need no database: row checks (the reasons a row fails), the time-ordered
ids of a chunk, the reading thread that parses the next chunk while one is written, and the stalled-job delay
against the queue's retries in template.yaml."""
from __future__ import annotations

import threading
import uuid
from datetime import UTC
from pathlib import Path

import pytest

from funnel.community import imports
from funnel.community.imports import RowRejected, parse_row, read_header
from funnel_dev.template import load_yaml

ROOT = Path(__file__).resolve().parents[3]
HEADER = read_header(["occurred_at", "action", "provider", "external_user_id", "resource_category",
                      "resource_external_id", "metadata", "campaign"])


@pytest.mark.parametrize(("cells", "reason"), [
    (["2026-01-01T00:00:00Z", "star", "github", "1", "", "", "", "", "extra"], "has 9 cells, the header has 8"),
    (["2026-01-01T00:00:00Z", "star", "github", "1\x00"], "external_user_id contains a NUL character"),
    (["2026-01-01T00:00:00Z", "star", "github", "x" * 10_001], "external_user_id is longer than 10000 characters"),
    (["2026-01-01T00:00:00Z", "", "github", "1"], "action is missing"),
    (["", "star", "github", "1"], "occurred_at is missing"),
    (["2026-01-01T00:00:00Z", "a" * 101, "github", "1"], "action is longer than 100 characters"),
    (["2026-01-01T00:00:00Z", "star", "github", ""], "an account needs both provider and external_user_id"),
    (["2026-01-01T00:00:00Z", "star", "Git Hub", "1"], "provider is 1-50 characters of a-z, 0-9, '_', '.', '-'"),
    (["2026-01-01T00:00:00Z", "star", "", ""], "no account (provider and external_user_id) and no anon_id"),
    (["2026-01-01T00:00:00Z", "star", "github", "1", "repo"],
     "a resource needs both resource_category and resource_external_id"),
    (["2026-01-01T00:00:00Z", "star", "github", "1", "", "", "[1]"], "metadata is not a JSON object"),
    (["2026-01-01T00:00:00Z", "star", "github", "1", "", "", '{"a": NaN}'], "metadata is not JSON"),
])
def test_a_bad_row_is_refused_with_its_reason(cells, reason):
    with pytest.raises(RowRejected) as refused:
        parse_row(2, cells, HEADER, UTC, HEADER.slots)
    assert str(refused.value) == reason


def test_a_row_without_a_key_is_keyed_by_its_content_and_other_columns_become_metadata():
    cells = ["2026-01-01 09:00:00", " star ", "GitHub", "42", "repo", "acme/sdk", '{"ref": 1}', "spring"]
    row = parse_row(2, cells, HEADER, UTC, HEADER.slots)
    assert (row.action, row.account, row.resource, row.source) == ("star", ("github", "42"), ("repo", "acme/sdk"),
                                                                   "csv")
    assert row.metadata == '{"ref": 1, "campaign": "spring"}' and row.dedup_key.startswith("csv:")
    assert parse_row(3, cells, HEADER, UTC).dedup_key == row.dedup_key  # the same event in another row or file


def test_a_chunks_ids_are_increasing_uuid7s():
    ids = imports._time_ordered_ids(10_000)  # beyond one millisecond's counter (4096)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}


def test_the_reading_thread_hands_over_chunks_in_order_and_raises_what_it_met():
    def chunks():
        yield from (imports._Chunk([], [(n, "")], 1, n) for n in range(3))
        raise ValueError("the file changed")

    ahead = imports._ReadAhead(chunks())
    seen = []
    with pytest.raises(ValueError, match="the file changed"):
        for chunk in ahead:
            seen.append(chunk.read_to)
    ahead.close()
    assert seen == [0, 1, 2]


def test_closing_the_reading_thread_stops_it_while_it_waits_to_hand_over():
    produced = threading.Event()

    def endless():
        while True:
            produced.set()
            yield imports._Chunk([], [], 0, 0)

    ahead = imports._ReadAhead(endless())
    assert next(iter(ahead)).rows_read == 0
    produced.wait(5)
    ahead.close()
    assert not ahead._thread.is_alive()


def test_a_job_counts_as_stalled_only_once_the_queue_has_stopped_retrying_its_message():
    queue = load_yaml(ROOT / "template.yaml")["Resources"]["CommunityActivityImportQueue"]["Properties"]
    retries = queue["VisibilityTimeout"] * queue["RedrivePolicy"]["maxReceiveCount"]
    assert imports.STALLED_AFTER_SECONDS == retries


@pytest.mark.parametrize("name", ["Mars/Olympus", "America", "../etc/passwd", "zone.tab"])
def test_a_name_that_is_not_a_time_zone_is_a_422_at_its_field(name):
    with pytest.raises(imports.ValidationFailed) as refused:
        imports._zone(name, ("body", "timezone"))
    assert refused.value.extra["errors"][0]["loc"] == ["body", "timezone"]
