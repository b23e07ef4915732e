"""The shortlink rules without a database: random keys, chosen-key and target checks, the UTM merge and the
machine-traffic rules the redirect shares with e-mail tracking."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from funnel.community import shortlinks
from funnel.platform.errors import ValidationFailed
from funnel.platform.traffic import request_reason


def test_random_keys_are_8_base62_characters_and_do_not_repeat():
    keys = {shortlinks.random_key() for _ in range(2000)}
    assert len(keys) == 2000
    assert all(len(k) == 8 and set(k) <= set(shortlinks.KEY_ALPHABET) for k in keys)


@pytest.mark.parametrize("key", ["ab", "a" * 65, "with space", "ä-umlaut", "dot.ted", "slash/ed"])
def test_bad_chosen_keys_are_refused(key):
    with pytest.raises(ValidationFailed):
        shortlinks.check_key(key)


@pytest.mark.parametrize(("target", "utm", "expected"), [
    ("https://example.com/a", {"utm_source": "x", "utm_medium": "y"}, [("utm_source", "x"), ("utm_medium", "y")]),
    ("https://example.com/a?utm_source=own&b=1", {"utm_source": "x", "utm_term": "t"},
     [("utm_source", "own"), ("b", "1"), ("utm_term", "t")]),
    ("https://example.com/a?b=1", {}, [("b", "1")]),
    ("https://example.com/a?utm_source=", {"utm_source": "x"}, [("utm_source", "")]),  # present, even blank
    ("https://example.com/a", {"utm_source": "日本 語&x"}, [("utm_source", "日本 語&x")]),
    ("https://example.com/a", {"not_utm": "x", "utm_content": ""}, []),
])
def test_utm_is_merged_without_overriding_the_targets_parameters(target, utm, expected):
    merged = shortlinks.merge_utm(target, utm)
    assert parse_qsl(urlsplit(merged).query, keep_blank_values=True) == expected
    assert urlsplit(merged).path == "/a"


def test_the_merge_keeps_the_fragment():
    assert shortlinks.merge_utm("https://example.com/a#top", {"utm_source": "x"}) == \
        "https://example.com/a?utm_source=x#top"


@pytest.mark.parametrize("target", ["https://example.com", "example.com/x", "http://8.8.8.8/", "https://xn--r8jz45g.jp/"])
def test_public_targets_are_accepted(target):
    assert shortlinks.check_target(target).startswith(("http://", "https://"))


@pytest.mark.parametrize("target", ["http://192.168.1.1/", "http://[fe80::1]/", "http://localhost:8080/",
                                    "http://printer.local/", "file:///etc/passwd", "http://metadata.internal/"])
def test_private_targets_are_refused(target):
    with pytest.raises(ValidationFailed):
        shortlinks.check_target(target)


@pytest.mark.parametrize(("agent", "method", "headers", "reason"), [
    ("Mozilla/5.0 (X11) Firefox/130", "GET", {}, None),
    ("Mozilla/5.0 (X11) Firefox/130", "HEAD", {}, "head_request"),
    ("Mozilla/5.0 (X11) Chrome/130", "GET", {"sec-purpose": "prefetch;prerender"}, "prefetch"),
    ("Mozilla/5.0 (X11) Firefox/130", "GET", {"x-moz": "prefetch"}, "prefetch"),
    ("Googlebot/2.1", "GET", {}, "scanner_user_agent"),
    ("", "GET", {}, "no_user_agent"),
])
def test_machine_traffic(agent, method, headers, reason):
    assert request_reason(agent, method, headers) == reason
