import pytest

from funnel.platform.errors import ValidationFailed
from funnel.platform.pagination import Page, decode_cursor, encode_cursor
from funnel.platform.principal import Principal, capped_role
from funnel.platform.prompts import placeholders, render


def test_api_key_scope_caps_the_creators_role():
    assert capped_role("owner", "read") == "viewer"
    assert capped_role("owner", "write") == "member"
    assert capped_role("viewer", "admin") == "viewer"
    assert capped_role("admin", "admin") == "admin"


def test_roles_are_ordered():
    admin = Principal("t", "u", "admin")
    assert admin.has_role("member") and admin.has_role("admin") and not admin.has_role("owner")
    assert Principal("t", "u", "member", api_key_id="k").actor == "apikey:k"


def test_cursor_round_trip_and_garbage():
    cursor = encode_cursor(["2026-01-01T00:00:00+00:00", "42"])  # keyset_page writes strings
    assert decode_cursor(cursor, 2) == ["2026-01-01T00:00:00+00:00", "42"]
    for bad in ("%%%", "bm90IGpzb24", encode_cursor([1, 2, 3]), encode_cursor(["2026-01-01T00:00:00+00:00", 42])):
        with pytest.raises(ValidationFailed):
            decode_cursor(bad, 2)


def test_page_knows_whether_there_is_more():
    rows = [{"id": i} for i in range(3)]
    assert Page.from_rows(rows, 2, lambda r: str(r["id"])).next_cursor == "1"
    assert Page.from_rows(rows, 3, lambda r: str(r["id"])).next_cursor is None


def test_prompt_placeholders_render_strictly():
    assert placeholders("Hi {{ name }} from {{company}}") == {"name", "company"}
    assert render("Hi {{name}}", {"name": "Ann"}) == "Hi Ann"
    with pytest.raises(ValidationFailed):
        render("Hi {{name}}", {})
