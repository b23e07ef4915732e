"""The export's pure rules: the order tables are restored in, and the checksum that does not depend on the order
the server scans a table in."""
from __future__ import annotations

import pytest

from funnel.platform.export import RowDigest, dependency_order


def test_tables_come_after_what_they_reference_by_name_among_equals():
    references = [("email_messages", "email_campaigns"), ("email_messages", "contacts"), ("contacts", "users"),
                  ("email_campaigns", "users"), ("developers", "developers"), ("steps", "runs"), ("runs", "users"),
                  ("activities", "developers"), ("audit_logs", "elsewhere")]
    tables = ["activities", "audit_logs", "contacts", "developers", "email_campaigns", "email_messages", "runs",
              "steps", "users"]
    assert dependency_order(tables, references) == [
        "audit_logs", "developers", "users", "activities", "contacts", "email_campaigns", "runs", "email_messages",
        "steps"]


def test_a_cycle_of_references_is_named():
    with pytest.raises(ValueError, match="cycle: a, b"):
        dependency_order(["a", "b", "c"], [("a", "b"), ("b", "a"), ("c", "a")])


def _digest(*chunks: bytes) -> RowDigest:
    digest = RowDigest()
    for chunk in chunks:
        digest.update(chunk)
    return digest


def test_the_checksum_counts_rows_across_chunks_and_ignores_their_order():
    one = _digest(b"1\ta\n2\tb\n", b"3\tc\n")
    other = _digest(b"3\t", b"c\n2\tb", b"\n1\ta\n")
    assert (one.rows, one.hexdigest()) == (other.rows, other.hexdigest()) == (3, one.hexdigest())
    assert _digest(b"1\ta\n2\tb\n").hexdigest() != one.hexdigest()
    assert _digest(b"1\ta\n1\ta\n").hexdigest() != _digest(b"1\ta\n").hexdigest()  # a repeated row counts
    assert _digest().hexdigest() == "0" * 64 and _digest().rows == 0


def test_text_cut_in_the_middle_of_a_row_is_no_checksum():
    with pytest.raises(ValueError, match="middle of a row"):
        _digest(b"1\ta\n2\t").hexdigest()
