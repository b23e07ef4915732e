"""Activity ingestion rules without a database: the CSV's encoding, header and rows (each failure with its reason),
the dedup keys a row gets, and which activities count as tracking for consent."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from funnel.community.activities import derived_dedup_key, is_tracking
from funnel.community.imports import (
    MAX_CELL_CHARS,
    RowRejected,
    decode,
    parse_row,
    read_header,
)
from funnel.platform.errors import ValidationFailed

HEADER = read_header(["occurred_at", "action", "provider", "external_user_id", "display_name", "source_ref",
                      "resource_category", "resource_external_id", "metadata", "campaign"])
JST = timezone(timedelta(hours=9))


def row(**cells: str) -> list[str]:
    values = {"occurred_at": "2026-01-05T10:00:00Z", "action": "star", "provider": "github",
              "external_user_id": "583231", **cells}
    return [values.get(name, "") for name in HEADER.names]


def rejected(cells: list[str], header=HEADER) -> str:
    with pytest.raises(RowRejected) as caught:
        parse_row(2, cells, header, UTC)
    return str(caught.value)


# ---------------------------------------------------------------- encodings

def test_utf8_with_and_without_a_bom_and_cp932_are_read_as_written():
    text = "occurred_at,action,display_name\n2026-01-05,star,山田 太郎\n"
    assert decode(text.encode("utf-8")) == ("utf-8", text)
    assert decode(b"\xef\xbb\xbf" + text.encode("utf-8")) == ("utf-8-sig", text)
    assert decode(text.encode("cp932")) == ("cp932", text)
    assert decode("髙橋 ①".encode("cp932")) == ("cp932", "髙橋 ①")  # CP932's extensions to Shift_JIS


def test_an_encoding_that_is_neither_is_refused_not_guessed():
    with pytest.raises(ValidationFailed, match="neither UTF-8 nor Shift_JIS"):
        decode("名前".encode("utf-16"))
    with pytest.raises(ValidationFailed, match="neither"):
        decode(b"\x80\x80\xfd\xfe")  # bytes CP932 would map to control or private-use characters
    with pytest.raises(ValidationFailed, match="BOM"):
        decode(b"\xef\xbb\xbf\xff\xfe")


# ---------------------------------------------------------------- header

def test_the_header_needs_a_time_an_action_and_who():
    with pytest.raises(ValidationFailed) as caught:
        read_header(["action", "email"])
    assert [e["msg"] for e in caught.value.extra["errors"]] == [
        "missing column: occurred_at", "missing column: provider and external_user_id (or anon_id)"]
    assert read_header(["Timestamp", "ACTION", "anon_id"]).index == {"occurred_at": 0, "action": 1, "anon_id": 2}


def test_other_columns_become_metadata_keys():
    parsed = parse_row(2, row(campaign="spring", metadata='{"utm": "x"}'), HEADER, UTC)
    assert parsed.metadata == '{"utm": "x", "campaign": "spring"}'


# ---------------------------------------------------------------- rows

def test_a_good_row_is_parsed_with_its_account_resource_and_time():
    parsed = parse_row(7, row(resource_category="repo", resource_external_id="acme/sdk", display_name="Ken"),
                       HEADER, UTC)
    assert (parsed.row, parsed.action, parsed.source) == (7, "star", "csv")
    assert parsed.account == ("github", "583231") and parsed.profile["display_name"] == "Ken"
    assert parsed.resource == ("repo", "acme/sdk")
    assert parsed.occurred_at == datetime(2026, 1, 5, 10, tzinfo=UTC)


def test_a_time_without_an_offset_is_in_the_imports_time_zone_and_excel_slashes_are_read():
    parsed = parse_row(2, row(occurred_at="2026/01/05 19:00"), HEADER, JST)
    assert parsed.occurred_at == datetime(2026, 1, 5, 10, tzinfo=UTC)


@pytest.mark.parametrize(("cells", "reason"), [
    (row(action=""), "action is missing"),
    (row(occurred_at=""), "occurred_at is missing"),
    (row(occurred_at="yesterday"), "occurred_at is not a date and time"),
    (row(occurred_at="2026-13-45"), "occurred_at is not a date and time"),
    (row(display_name="Null\x00Corp"), "display_name contains a NUL character"),
    (row(display_name="x" * (MAX_CELL_CHARS + 1)), f"display_name is longer than {MAX_CELL_CHARS} characters"),
    (row(action="a" * 101), "action is longer than 100 characters"),
    (row(provider=""), "an account needs both provider and external_user_id"),
    (row(provider="", external_user_id=""), "no account (provider and external_user_id) and no anon_id"),
    (row(provider="Git Hub"), "provider is 1-50 characters"),
    (row(resource_category="repo"), "a resource needs both resource_category and resource_external_id"),
    (row(metadata="{not json"), "metadata is not JSON"),
    (row(metadata="[1, 2]"), "metadata is not a JSON object"),
    (row(metadata='{"n": NaN}'), "metadata is not JSON"),
    (row(metadata='{"n": 1e400}'), "metadata is not JSON"),
    (row(metadata='{"a": "\\u0000"}'), "metadata contains a NUL character"),
    (row() + ["one too many"], "has 11 cells, the header has 10"),
])
def test_a_bad_row_is_rejected_with_its_reason(cells, reason):
    assert rejected(cells).startswith(reason)


def test_a_short_row_reads_its_missing_cells_as_empty():
    assert parse_row(2, row()[:4], HEADER, UTC).metadata is None


# ---------------------------------------------------------------- dedup keys

def test_a_row_keeps_its_dedup_key_else_source_and_source_ref_else_its_content():
    assert parse_row(2, row(), read_header([*HEADER.names, "dedup_key"]), UTC).dedup_key.startswith("csv:")
    assert parse_row(2, row(source_ref="ev-1"), HEADER, UTC).dedup_key == "csv:ev-1"
    same, again = parse_row(2, row(), HEADER, UTC), parse_row(900, row(), HEADER, UTC)
    assert same.dedup_key == again.dedup_key  # the same event twice, wherever it sits, in whichever upload
    other = parse_row(2, row(occurred_at="2026-01-05T10:00:01Z"), HEADER, UTC)
    assert other.dedup_key != same.dedup_key
    in_tokyo = parse_row(2, row(occurred_at="2026-01-05T19:00:00+09:00"), HEADER, UTC)
    assert in_tokyo.dedup_key == same.dedup_key  # one instant, whatever offset it is written with


def test_the_api_derives_a_key_only_from_a_source_ref():
    assert derived_dedup_key("given", "github", "d-1") == "given"
    assert derived_dedup_key(None, "github", "d-1") == "github:d-1"
    assert derived_dedup_key(None, "github", None) is None


# ---------------------------------------------------------------- consent

@pytest.mark.parametrize(("source", "action", "tracking"), [
    ("shortlink", "click", True), ("email", "open", True), ("email", "click", True), ("ga", "signup", True),
    ("posthog", "api_call", True), ("web", "page_view", True), ("connpass", "view", True),
    ("github", "star", False), ("email", "reply", False), ("connpass", "attend", False), ("api", "signup", False),
])
def test_tracking_derived_activities(source, action, tracking):
    assert is_tracking(source, action) is tracking
